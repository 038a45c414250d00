//! Test-only: the Spin services the gateway component imports, as a component of its own that
//! the end-to-end tests compose in front of it (`wasm-tools compose`), so plain `wasmtime serve`
//! can run the gateway. It targets the `spin-services` world of `wit/gateway.wit`.
//!
//! Key-value: store `default` only, one file per key in the preopened folder `/kv` (the file
//! name is the key in hex), written to a temporary file and renamed, so each write is atomic;
//! the folder outlives the per-request instances. Variables: `SPIN_VARIABLE_<NAME>` from the
//! environment, as Spin's own environment provider reads them.

#[cfg(target_arch = "wasm32")]
mod services {
    use std::path::PathBuf;

    use exports::fermyon::spin::key_value::{self, Error as KvError};
    use exports::fermyon::spin::variables::{self, Error as VariableError};

    wit_bindgen::generate!({
        path: "../../../wit",
        world: "h200:edge/spin-services",
    });

    /// Where the files live (a folder the host preopens).
    const ROOT: &str = "/kv";

    struct Services;

    /// The `default` store.
    pub struct FileStore;

    fn path(key: &str) -> PathBuf {
        let name: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        PathBuf::from(ROOT).join(name)
    }

    fn other(error: std::io::Error) -> KvError {
        KvError::Other(error.to_string())
    }

    impl key_value::GuestStore for FileStore {
        fn open(label: String) -> Result<key_value::Store, KvError> {
            if label != "default" {
                return Err(KvError::NoSuchStore);
            }
            Ok(key_value::Store::new(FileStore))
        }

        fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
            match std::fs::read(path(&key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(other(error)),
            }
        }

        fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
            let target = path(&key);
            let mut nonce = [0u8; 8];
            getrandom::fill(&mut nonce).map_err(|e| KvError::Other(e.to_string()))?;
            let temporary =
                target.with_extension(format!("tmp-{:016x}", u64::from_le_bytes(nonce)));
            std::fs::write(&temporary, value).map_err(other)?;
            std::fs::rename(&temporary, &target).map_err(other)
        }

        fn delete(&self, key: String) -> Result<(), KvError> {
            match std::fs::remove_file(path(&key)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(other(error)),
                _ => Ok(()),
            }
        }

        fn exists(&self, key: String) -> Result<bool, KvError> {
            Ok(path(&key).exists())
        }

        fn get_keys(&self) -> Result<Vec<String>, KvError> {
            let mut keys = Vec::new();
            for entry in std::fs::read_dir(ROOT).map_err(other)? {
                let name = entry.map_err(other)?.file_name();
                let name = name.to_string_lossy();
                if name.contains('.') {
                    continue;
                }
                let bytes: Option<Vec<u8>> = (0..name.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
                    .collect();
                if let Some(key) = bytes.and_then(|b| String::from_utf8(b).ok()) {
                    keys.push(key);
                }
            }
            Ok(keys)
        }
    }

    impl key_value::Guest for Services {
        type Store = FileStore;
    }

    impl variables::Guest for Services {
        fn get(name: String) -> Result<String, VariableError> {
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(VariableError::InvalidName(name));
            }
            std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
                .map_err(|_| VariableError::Undefined(name))
        }
    }

    export!(Services);
}
