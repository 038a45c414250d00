//! The deployment files say what the binary does: every manifest and the compose file parse,
//! every flag they pass is one `h200` takes, probes and health checks ask the ports the services
//! listen on, the pods meet the `restricted` Pod Security level, the network policies let the
//! edge reach only the backend and the backend and workers only Postgres and Redis, and the KEDA
//! query counts the jobs of our own jobs table (run against a migrated Postgres).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every document of every manifest of the kustomize base, by `kind/name`.
fn manifests() -> BTreeMap<String, Value> {
    let base = repo().join("deploy/k8s/base");
    let kustomization: Value =
        serde_yaml_ng::from_str(&read(&base.join("kustomization.yaml"))).expect("kustomization");
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file name").to_owned())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&base)
        .expect("the base folder")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(
        listed, present,
        "kustomization lists every manifest and only those"
    );
    let mut documents = BTreeMap::new();
    for file in &listed {
        let text = read(&base.join(file));
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
            let kind = value["kind"].as_str().expect("kind").to_owned();
            let name = value["metadata"]["name"].as_str().expect("name").to_owned();
            assert!(
                documents.insert(format!("{kind}/{name}"), value).is_none(),
                "{kind}/{name} twice"
            );
        }
    }
    documents
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|i| i.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The long flags `h200 <command> --help` lists.
fn flags_of(command: &str) -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_h200"))
        .args([command, "--help"])
        .output()
        .expect("h200 runs");
    assert!(output.status.success(), "h200 {command} --help");
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|word| word.starts_with("--"))
        .map(str::to_owned)
        .collect()
}

/// Checks that `args` (a command line after `h200`) names a command and only its flags, and
/// returns the port of its `--addr`.
fn check_command_line(what: &str, args: &[String]) -> Option<u16> {
    let command = &args[0];
    let flags = flags_of(command);
    for arg in args.iter().filter(|a| a.starts_with("--")) {
        let flag = arg.split('=').next().expect("a flag");
        assert!(
            flags.contains(flag),
            "{what}: h200 {command} takes no {flag}"
        );
    }
    let addr = args.iter().position(|a| a == "--addr")?;
    let port = args[addr + 1].rsplit(':').next()?.parse().ok();
    assert!(
        args[addr + 1].starts_with("0.0.0.0:"),
        "{what} listens on every interface of its container"
    );
    port
}

fn pod_spec<'a>(documents: &'a BTreeMap<String, Value>, deployment: &str) -> &'a Value {
    &documents
        .get(&format!("Deployment/{deployment}"))
        .unwrap_or_else(|| panic!("a Deployment {deployment}"))["spec"]["template"]["spec"]
}

#[test]
fn the_namespace_enforces_the_restricted_pod_security_level() {
    let documents = manifests();
    let labels = &documents["Namespace/h200"]["metadata"]["labels"];
    assert_eq!(
        labels["pod-security.kubernetes.io/enforce"].as_str(),
        Some("restricted")
    );
}

#[test]
fn every_pod_meets_the_restricted_level() {
    let documents = manifests();
    for deployment in ["backend", "edge", "worker"] {
        let spec = pod_spec(&documents, deployment);
        let pod = &spec["securityContext"];
        assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true), "{deployment}");
        assert_ne!(pod["runAsUser"].as_u64(), Some(0), "{deployment}");
        assert_eq!(
            pod["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{deployment}"
        );
        assert_eq!(spec["automountServiceAccountToken"].as_bool(), Some(false));
        for container in spec["containers"].as_sequence().expect("containers") {
            let security = &container["securityContext"];
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{deployment}"
            );
            assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
            assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
            assert!(security["capabilities"]["add"].is_null(), "{deployment}");
        }
        for volume in spec["volumes"].as_sequence().into_iter().flatten() {
            assert!(
                volume["hostPath"].is_null(),
                "{deployment}: no hostPath volume"
            );
        }
    }
}

#[test]
fn backend_and_edge_probe_health_and_ready_on_the_port_they_listen_on() {
    let documents = manifests();
    for (deployment, port_name) in [("backend", "http"), ("edge", "https")] {
        let container = &pod_spec(&documents, deployment)["containers"][0];
        let args = strings(&container["args"]);
        assert_eq!(args[0], deployment);
        let port = check_command_line(deployment, &args).expect("--addr");
        let ports = container["ports"].as_sequence().expect("ports");
        assert!(
            ports.iter().any(|p| p["name"].as_str() == Some(port_name)
                && p["containerPort"].as_u64() == Some(u64::from(port))),
            "{deployment}: port {port_name} is the --addr port {port}"
        );
        for (probe, path) in [("livenessProbe", "/health"), ("readinessProbe", "/ready")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{deployment} {probe}");
            assert_eq!(
                get["port"].as_str(),
                Some(port_name),
                "{deployment} {probe}"
            );
        }
        let replicas = documents[&format!("Deployment/{deployment}")]["spec"]["replicas"]
            .as_u64()
            .expect("replicas");
        assert!(replicas >= 2, "{deployment} runs replicas");
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--state-url" && w[1].starts_with("redis://")),
            "{deployment} replicas share their state in Redis"
        );
    }
    let edge = &pod_spec(&documents, "edge")["containers"][0];
    let get = &edge["livenessProbe"]["httpGet"];
    assert_eq!(
        get["scheme"].as_str(),
        Some("HTTPS"),
        "the edge serves HTTPS"
    );
}

#[test]
fn key_files_and_the_database_url_come_from_secrets() {
    let documents = manifests();
    for deployment in ["backend", "edge"] {
        let spec = pod_spec(&documents, deployment);
        let keys = spec["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| v["name"].as_str() == Some("keys"))
            .expect("a keys volume");
        assert_eq!(keys["secret"]["secretName"].as_str(), Some("h200-keys"));
        let mount = spec["containers"][0]["volumeMounts"]
            .as_sequence()
            .expect("mounts")
            .iter()
            .find(|m| m["name"].as_str() == Some("keys"))
            .expect("the keys mounted");
        assert_eq!(mount["mountPath"].as_str(), Some("/data/keys"));
        assert_eq!(mount["readOnly"].as_bool(), Some(true));
    }
    for deployment in ["backend", "worker"] {
        let env = pod_spec(&documents, deployment)["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .clone();
        let url = env
            .iter()
            .find(|e| e["name"].as_str() == Some("H200_DATABASE_URL"))
            .expect("H200_DATABASE_URL");
        assert_eq!(
            url["valueFrom"]["secretKeyRef"]["name"].as_str(),
            Some("h200-database"),
            "{deployment}"
        );
    }
    for (name, document) in &documents {
        assert!(
            !name.starts_with("Secret/"),
            "no Secret with data is committed: {name}"
        );
        let _ = document;
    }
}

#[test]
fn workers_take_a_gpu_each_and_keda_scales_them_on_the_queue() {
    let documents = manifests();
    let spec = pod_spec(&documents, "worker");
    let container = &spec["containers"][0];
    assert_eq!(strings(&container["args"])[0], "worker");
    check_command_line("worker", &strings(&container["args"]));
    for side in ["requests", "limits"] {
        assert_eq!(
            container["resources"][side]["nvidia.com/gpu"].as_u64(),
            Some(1),
            "{side}"
        );
    }
    let scaled = &documents["ScaledObject/worker"]["spec"];
    assert_eq!(scaled["scaleTargetRef"]["name"].as_str(), Some("worker"));
    let trigger = &scaled["triggers"][0];
    assert_eq!(trigger["type"].as_str(), Some("postgresql"));
    assert!(trigger["metadata"]["query"].is_string());
    let auth = trigger["authenticationRef"]["name"].as_str().expect("auth");
    let auth = &documents[&format!("TriggerAuthentication/{auth}")]["spec"]["secretTargetRef"][0];
    assert_eq!(auth["name"].as_str(), Some("h200-database"));
}

#[tokio::test]
async fn the_keda_query_counts_the_queued_retrying_and_running_jobs_of_our_jobs_table() {
    use gpu_backend::store::jobs::NewJob;
    let documents = manifests();
    let query = documents["ScaledObject/worker"]["spec"]["triggers"][0]["metadata"]["query"]
        .as_str()
        .expect("the query")
        .to_owned();
    let db = common::TestDatabase::new(common::Backend::Postgres).await;
    let store = db.store().await;
    let count = |store: &gpu_backend::store::Store| {
        let query = query.clone();
        let url = db.url.clone();
        let _ = store;
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .expect("Postgres");
            let (n,): (i64,) = sqlx::query_as(&query)
                .fetch_one(&mut conn)
                .await
                .expect("the KEDA query runs on our schema");
            n
        }
    };
    assert_eq!(count(&store).await, 0);
    for i in 0..5 {
        store
            .enqueue(&NewJob::new("echo", serde_json::json!({ "i": i })))
            .await
            .expect("enqueue");
    }
    assert_eq!(count(&store).await, 5, "queued jobs count");
    let claimed = store
        .claim("w1", &["echo"], 2, 30_000)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(count(&store).await, 5, "running jobs still count");
    for job in &claimed {
        store
            .complete("w1", &job.id, &serde_json::json!({}), None)
            .await
            .expect("complete");
    }
    assert_eq!(count(&store).await, 3, "finished jobs do not");
}

#[test]
fn network_policies_let_the_edge_reach_only_the_backend_and_the_rest_only_postgres_and_redis() {
    let documents = manifests();
    let deny = &documents["NetworkPolicy/default-deny"]["spec"];
    assert_eq!(deny["podSelector"].as_mapping().map(|m| m.len()), Some(0));
    assert_eq!(strings(&deny["policyTypes"]), ["Ingress", "Egress"]);
    let ports_of = |rule: &Value| -> BTreeSet<u64> {
        rule["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_u64())
            .collect()
    };
    const DNS: u64 = 53;
    let egress = |name: &str| -> Vec<Value> {
        documents[&format!("NetworkPolicy/{name}")]["spec"]["egress"]
            .as_sequence()
            .expect("egress rules")
            .clone()
    };
    // The edge: to backend pods on the backend port, Redis, DNS; nothing else.
    for rule in egress("edge") {
        let ports = ports_of(&rule);
        if let Some(to) = rule["to"].as_sequence() {
            assert_eq!(
                to[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
                Some("backend")
            );
            assert_eq!(ports, BTreeSet::from([8081]));
        } else {
            assert!(
                ports == BTreeSet::from([6379]) || ports == BTreeSet::from([DNS]),
                "edge egress {ports:?}"
            );
        }
    }
    for name in ["backend", "worker"] {
        for rule in egress(name) {
            let ports = ports_of(&rule);
            assert!(
                ports.is_subset(&BTreeSet::from([5432, 6379, DNS])) && !ports.is_empty(),
                "{name} egress {ports:?}"
            );
        }
    }
    let backend_in = &documents["NetworkPolicy/backend"]["spec"]["ingress"];
    assert_eq!(backend_in.as_sequence().map(Vec::len), Some(1));
    assert_eq!(
        backend_in[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        Some("edge"),
        "only the edge reaches the backend"
    );
    assert!(
        documents["NetworkPolicy/worker"]["spec"]["ingress"].is_null(),
        "nothing reaches a worker"
    );
}

#[test]
fn every_deployment_has_a_disruption_budget() {
    let documents = manifests();
    for deployment in ["backend", "edge", "worker"] {
        let budget = &documents[&format!("PodDisruptionBudget/{deployment}")]["spec"];
        assert_eq!(
            budget["selector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
            Some(deployment)
        );
        assert!(budget["minAvailable"].is_u64() || budget["maxUnavailable"].is_u64());
    }
}

#[test]
fn compose_runs_the_same_binary_with_its_flags_and_health_checks_on_its_ports() {
    let compose: Value =
        serde_yaml_ng::from_str(&read(&repo().join("compose.yaml"))).expect("compose.yaml parses");
    let services = compose["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(["backend", "edge", "postgres", "redis", "worker"])
    );
    assert_eq!(
        compose["services"]["worker"]["deploy"]["replicas"].as_u64(),
        Some(2)
    );
    for service in ["backend", "edge", "worker"] {
        let spec = &compose["services"][service];
        // The anchor's settings are merged in by compose; serde_yaml_ng keeps them under `<<`.
        let common = &spec["<<"];
        let setting = |key: &str| {
            if spec[key].is_null() {
                common[key].clone()
            } else {
                spec[key].clone()
            }
        };
        assert_eq!(setting("read_only").as_bool(), Some(true), "{service}");
        assert_eq!(strings(&setting("cap_drop")), ["ALL"], "{service}");
        let args = strings(&spec["command"]);
        assert_eq!(args[0], service);
        let port = check_command_line(service, &args);
        if let Some(port) = port {
            let test = strings(&spec["healthcheck"]["test"]);
            assert_eq!(
                test,
                [
                    "CMD",
                    "/usr/local/bin/h200",
                    "probe",
                    &format!("http://127.0.0.1:{port}/health")
                ],
                "{service}"
            );
        }
    }
    let edge_ports = strings(&compose["services"]["edge"]["ports"]);
    assert_eq!(edge_ports, ["8080:8080"]);
}

#[test]
fn the_images_run_the_binary_the_tests_run_as_a_non_root_user_with_a_health_check() {
    for (file, features) in [("Dockerfile", ""), ("Dockerfile.cuda", " --features cuda")] {
        let text = read(&repo().join(file));
        assert!(
            text.contains(&format!("cargo build --release --locked -p h200{features}")),
            "{file} builds the h200 package"
        );
        let stages: Vec<&str> = text.split("\nFROM ").collect();
        assert!(stages.len() >= 3, "{file} is multi-stage");
        let last = stages[stages.len() - 1];
        assert!(last.contains("USER 65532:65532"), "{file} runs as non-root");
        assert!(
            last.contains("ENTRYPOINT [\"/usr/local/bin/h200\"]"),
            "{file}: the entrypoint is the binary"
        );
        assert!(
            last.contains("HEALTHCHECK"),
            "{file} says how it is checked"
        );
    }
    let minimal = read(&repo().join("Dockerfile"));
    assert!(
        minimal.contains("FROM gcr.io/distroless/cc-debian12:nonroot"),
        "the final image has no shell"
    );
    assert!(minimal.contains("\"probe\", \"http://127.0.0.1:8081/health\""));
    check_command_line(
        "the default command",
        &["backend".into(), "--addr".into(), "0.0.0.0:8081".into()],
    );
}
