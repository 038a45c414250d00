//! Test-only: the Spin services the gateway component imports, as a component of its own that
//! the end-to-end tests compose in front of it (`wasm-tools compose`), so plain `wasmtime serve`
//! can run the gateway. It targets the `spin-services` world of `wit/gateway.wit`.
//!
//! Key-value (`wasi:keyvalue` `store` and `atomics`): store `default` only, one file per key in
//! the preopened folder `/kv` (the file name is the key in hex), which outlives the per-request
//! instances. `wasmtime serve` runs each request in an instance of its own, concurrently, so
//! every write of a key (set, delete, swap, increment) happens while holding the key's lock file,
//! created with `create + exclusive` open flags (at most one instance succeeds) and removed after;
//! a waiting writer retries for a bounded time, and a lock older than [`STALE_LOCK`] (its holder
//! died) is broken. A compare-and-swap remembers the value its handle saw and, under the lock,
//! writes only if the file still holds it, so concurrent instances cannot both win one value.
//! Writes go to a temporary file that is renamed over the key's, so a reader never sees half a
//! value. Variables: `SPIN_VARIABLE_<NAME>` from the environment, as Spin's own environment
//! provider reads them.

#[cfg(target_arch = "wasm32")]
mod services {
    use std::fs::OpenOptions;
    use std::io::ErrorKind;
    use std::path::PathBuf;
    use std::time::{Duration, Instant, SystemTime};

    use exports::fermyon::spin::variables::{self, Error as VariableError};
    use exports::wasi::keyvalue::atomics::{self, CasError};
    use exports::wasi::keyvalue::store::{self, Error as KvError, KeyResponse};

    wit_bindgen::generate!({
        path: "../../../wit",
        world: "h200:edge/spin-services",
    });

    /// Where the files live (a folder the host preopens).
    const ROOT: &str = "/kv";
    /// How long a writer waits for a key's lock before it gives up.
    const LOCK_WAIT: Duration = Duration::from_secs(5);
    /// A lock file this old belongs to a holder that died; it is removed.
    const STALE_LOCK: Duration = Duration::from_secs(5);

    struct Services;

    /// The `default` store.
    pub struct FileStore;

    /// A compare-and-swap on one key: the value the key held when the handle was made.
    pub struct FileCas {
        key: String,
        seen: Option<Vec<u8>>,
    }

    fn path(key: &str) -> PathBuf {
        let name: String = key.bytes().map(|b| format!("{b:02x}")).collect();
        PathBuf::from(ROOT).join(name)
    }

    fn other(error: impl ToString) -> KvError {
        KvError::Other(error.to_string())
    }

    fn random_u64() -> Result<u64, KvError> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(other)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match std::fs::read(path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(other(error)),
        }
    }

    /// Replaces the key's file in one rename (call with the key's lock held).
    fn write(key: &str, value: &[u8]) -> Result<(), KvError> {
        let target = path(key);
        let temporary = target.with_extension(format!("tmp-{:016x}", random_u64()?));
        std::fs::write(&temporary, value).map_err(other)?;
        std::fs::rename(&temporary, &target).map_err(other)
    }

    /// Removes the key's file (call with the key's lock held).
    fn remove(key: &str) -> Result<(), KvError> {
        match std::fs::remove_file(path(key)) {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(other(error)),
            _ => Ok(()),
        }
    }

    /// The lock file of one key, held while this value lives.
    struct KeyLock(PathBuf);

    impl KeyLock {
        /// Waits (bounded) until this instance alone holds `key`'s lock.
        fn take(key: &str) -> Result<KeyLock, KvError> {
            let lock = path(key).with_extension("lock");
            let started = Instant::now();
            let mut pause_us = 50u64;
            loop {
                match OpenOptions::new().write(true).create_new(true).open(&lock) {
                    Ok(_) => return Ok(KeyLock(lock)),
                    Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
                    Err(error) => return Err(other(error)),
                }
                let stale = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|at| SystemTime::now().duration_since(at).ok())
                    .is_some_and(|age| age > STALE_LOCK);
                if stale {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                if started.elapsed() > LOCK_WAIT {
                    return Err(KvError::Other(format!(
                        "the lock of {key} stayed taken for {} s",
                        LOCK_WAIT.as_secs()
                    )));
                }
                let jitter = random_u64()? % pause_us.max(1);
                std::thread::sleep(Duration::from_micros(pause_us / 2 + jitter));
                pause_us = (pause_us * 2).min(5_000);
            }
        }
    }

    impl Drop for KeyLock {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    impl store::Guest for Services {
        type Bucket = FileStore;

        fn open(identifier: String) -> Result<store::Bucket, KvError> {
            if identifier != "default" {
                return Err(KvError::NoSuchStore);
            }
            Ok(store::Bucket::new(FileStore))
        }
    }

    impl store::GuestBucket for FileStore {
        fn get(&self, key: String) -> Result<Option<Vec<u8>>, KvError> {
            read(&key)
        }

        fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
            let _lock = KeyLock::take(&key)?;
            write(&key, &value)
        }

        fn delete(&self, key: String) -> Result<(), KvError> {
            let _lock = KeyLock::take(&key)?;
            remove(&key)
        }

        fn exists(&self, key: String) -> Result<bool, KvError> {
            Ok(path(&key).exists())
        }

        /// Every key in one page (no cursor), as Spin's own stores answer.
        fn list_keys(&self, cursor: Option<String>) -> Result<KeyResponse, KvError> {
            if cursor.is_some() {
                return Err(KvError::Other("list-keys: cursor not supported".into()));
            }
            let mut keys = Vec::new();
            for entry in std::fs::read_dir(ROOT).map_err(other)? {
                let name = entry.map_err(other)?.file_name();
                let name = name.to_string_lossy();
                // Locks and temporary files carry an extension; keys never do.
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
            Ok(KeyResponse { keys, cursor: None })
        }
    }

    impl atomics::Guest for Services {
        type Cas = FileCas;

        /// The key's number (decimal text; absent is 0) plus `delta`, under the key's lock.
        fn increment(
            _bucket: store::BucketBorrow<'_>,
            key: String,
            delta: i64,
        ) -> Result<i64, KvError> {
            let _lock = KeyLock::take(&key)?;
            let current = match read(&key)? {
                None => 0,
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<i64>().ok())
                    .ok_or_else(|| KvError::Other(format!("{key} holds no number")))?,
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| KvError::Other(format!("{key} would overflow")))?;
            write(&key, next.to_string().as_bytes())?;
            Ok(next)
        }

        /// Writes `value` if the key still holds what the handle saw; else hands back a handle
        /// on what it holds now.
        fn swap(cas: atomics::Cas, value: Vec<u8>) -> Result<(), CasError> {
            let FileCas { key, seen } = cas.into_inner::<FileCas>();
            let _lock = KeyLock::take(&key).map_err(CasError::StoreError)?;
            let now = read(&key).map_err(CasError::StoreError)?;
            if now != seen {
                return Err(CasError::CasFailed(atomics::Cas::new(FileCas {
                    key,
                    seen: now,
                })));
            }
            write(&key, &value).map_err(CasError::StoreError)
        }
    }

    impl atomics::GuestCas for FileCas {
        fn new(_bucket: store::BucketBorrow<'_>, key: String) -> Result<atomics::Cas, KvError> {
            let seen = read(&key)?;
            Ok(atomics::Cas::new(FileCas { key, seen }))
        }

        fn current(&self) -> Result<Option<Vec<u8>>, KvError> {
            Ok(self.seen.clone())
        }
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
