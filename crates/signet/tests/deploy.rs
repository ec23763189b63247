//! The deployment files agree with each other, with the image and with the configuration:
//! `deploy/kubernetes/*.yaml`, `docker-compose.yml` and the `Dockerfile`. Nothing here needs a
//! cluster or Docker: the YAML is parsed and cross-checked, and the `signet.toml` of the
//! ConfigMap is loaded by the real binary (`signet serve` must start with it).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use serde_norway::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of a YAML file.
fn documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs = Vec::new();
    for de in serde_norway::Deserializer::from_str(&text) {
        let v = Value::deserialize(de)
            .unwrap_or_else(|e| panic!("{} does not parse as YAML: {e}", path.display()));
        if !v.is_null() {
            docs.push(v);
        }
    }
    docs
}

fn kubernetes_files() -> Vec<PathBuf> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("signet.yaml"))
            && files.iter().any(|f| f.ends_with("example-workload.yaml")),
        "{files:?}"
    );
    files
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string in {v:?}"))
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(*key)
            .unwrap_or_else(|| panic!("{key} missing (looking for {path:?})"));
    }
    cur
}

fn seq<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a Value> {
    match v.get(path[0]) {
        None => Vec::new(),
        Some(_) => get(v, path)
            .as_sequence()
            .unwrap_or_else(|| panic!("{path:?} is not a list"))
            .iter()
            .collect(),
    }
}

fn kind<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && s(d, &["metadata", "name"]) == name
        })
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

/// The value of `--flag VALUE` or `--flag=VALUE` in an argument list.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{name}=")).map(str::to_string)
        }
    })
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    seq(v, &[key])
        .iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{key}: {other:?}"),
        })
        .collect()
}

/// A container's environment: `env` values and `envFrom` ConfigMaps found in `docs`.
fn environment(container: &Value, docs: &[Value], namespace: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for from in seq(container, &["envFrom"]) {
        let name = s(from, &["configMapRef", "name"]);
        let cm = docs
            .iter()
            .find(|d| {
                d.get("kind").and_then(Value::as_str) == Some("ConfigMap")
                    && s(d, &["metadata", "name"]) == name
                    && s(d, &["metadata", "namespace"]) == namespace
            })
            .unwrap_or_else(|| panic!("envFrom names ConfigMap {name}, which is not defined"));
        for (k, v) in get(cm, &["data"]).as_mapping().unwrap() {
            env.insert(
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            );
        }
    }
    for e in seq(container, &["env"]) {
        if let Some(v) = e.get("value") {
            env.insert(s(e, &["name"]).to_string(), v.as_str().unwrap().to_string());
        }
    }
    env
}

/// A setting from a flag, else its environment twin.
fn setting(
    args: &[String],
    env: &BTreeMap<String, String>,
    flag_name: &str,
    var: &str,
) -> Option<String> {
    flag(args, flag_name).or_else(|| env.get(var).cloned())
}

fn pod_spec(deployment: &Value) -> &Value {
    get(deployment, &["spec", "template", "spec"])
}

fn containers(pod: &Value) -> Vec<&Value> {
    let mut all = seq(pod, &["initContainers"]);
    all.extend(seq(pod, &["containers"]));
    all
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    containers(pod)
        .into_iter()
        .find(|c| s(c, &["name"]) == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// containerPort by name and number.
fn container_ports(c: &Value) -> BTreeMap<String, u16> {
    seq(c, &["ports"])
        .iter()
        .map(|p| {
            let port = u16::try_from(get(p, &["containerPort"]).as_u64().unwrap()).unwrap();
            (
                p.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                port,
            )
        })
        .collect()
}

/// Where a volume is mounted in a container.
fn mount_of(c: &Value, volume: &str) -> Option<String> {
    seq(c, &["volumeMounts"])
        .iter()
        .find(|m| s(m, &["name"]) == volume)
        .map(|m| s(m, &["mountPath"]).to_string())
}

/// The volume mounted at `path` in a container.
fn volume_at(c: &Value, path: &str) -> String {
    seq(c, &["volumeMounts"])
        .iter()
        .find(|m| s(m, &["mountPath"]) == path)
        .map(|m| s(m, &["name"]).to_string())
        .unwrap_or_else(|| panic!("{} mounts nothing at {path}", s(c, &["name"])))
}

fn signet_toml(docs: &[Value]) -> toml::Table {
    let cm = kind(docs, "ConfigMap", "signet-config");
    s(cm, &["data", "signet.toml"]).parse().unwrap()
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo().join("Dockerfile")).unwrap()
}

#[test]
fn every_yaml_file_parses_and_names_its_objects() {
    let mut files = kubernetes_files();
    files.push(repo().join("docker-compose.yml"));
    for f in &files {
        let docs = documents(f);
        assert!(!docs.is_empty(), "{} is empty", f.display());
        if f.ends_with("docker-compose.yml") {
            continue;
        }
        for d in &docs {
            for key in ["apiVersion", "kind"] {
                assert!(
                    d.get(key).and_then(Value::as_str).is_some(),
                    "{}: {key} in {d:?}",
                    f.display()
                );
            }
            assert!(!s(d, &["metadata", "name"]).is_empty());
            if !matches!(s(d, &["kind"]), "Namespace") {
                assert!(
                    !s(d, &["metadata", "namespace"]).is_empty(),
                    "{}: {d:?}",
                    f.display()
                );
            }
            // Every mounted volume is declared in its pod.
            if s(d, &["kind"]) == "Deployment" {
                let pod = pod_spec(d);
                let declared: BTreeSet<&str> = seq(pod, &["volumes"])
                    .iter()
                    .map(|v| s(v, &["name"]))
                    .collect();
                for c in containers(pod) {
                    for m in seq(c, &["volumeMounts"]) {
                        assert!(declared.contains(s(m, &["name"])), "{}: {m:?}", f.display());
                    }
                }
            }
        }
    }
}

#[test]
fn images_agree_and_match_the_dockerfile_user() {
    let df = dockerfile();
    let uid: i64 = df
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile sets USER")
        .split(':')
        .next()
        .unwrap()
        .trim()
        .parse()
        .expect("USER is numeric (Kubernetes runAsNonRoot needs a numeric user)");
    assert_ne!(uid, 0);
    let expose: BTreeSet<u16> = df
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    assert_eq!(expose, BTreeSet::from([8443, 8080]), "EXPOSE");
    assert!(
        df.contains("AS builder") && df.contains("COPY --from=builder"),
        "multi-stage"
    );

    let mut signet_images = BTreeSet::new();
    for f in kubernetes_files() {
        for d in documents(&f) {
            if s(&d, &["kind"]) != "Deployment" {
                continue;
            }
            let pod = pod_spec(&d);
            let sc = get(pod, &["securityContext"]);
            assert_eq!(get(sc, &["runAsNonRoot"]).as_bool(), Some(true));
            for c in containers(pod) {
                let image = s(c, &["image"]);
                let args = strings(c, "args");
                let command = strings(c, "command");
                let runs_signet = args.first().is_some_and(|a| {
                    ["serve", "bootstrap", "renew", "responder"].contains(&a.as_str())
                }) || command.iter().any(|a| a.contains("signet"));
                if runs_signet {
                    signet_images.insert(image.to_string());
                    // The image's user, unless the pod names another for all containers.
                    assert_eq!(
                        get(sc, &["runAsUser"]).as_i64(),
                        Some(uid),
                        "{}",
                        f.display()
                    );
                }
            }
        }
    }
    assert_eq!(
        signet_images.len(),
        1,
        "every signet container uses one image: {signet_images:?}"
    );
}

#[test]
fn ca_ports_agree_between_config_containers_and_the_service() {
    let docs = documents(&repo().join("deploy/kubernetes/signet.yaml"));
    let cfg = signet_toml(&docs);
    let api_port = port_of(cfg["server"]["listen"].as_str().unwrap());
    let ocsp_port = port_of(cfg["responder"]["listen"].as_str().unwrap());
    assert!(
        cfg["server"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("0.0.0.0:"),
        "listen on all interfaces"
    );
    assert!(
        cfg["responder"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("0.0.0.0:")
    );

    let deployment = kind(&docs, "Deployment", "signet");
    let pod = pod_spec(deployment);
    let serve = container(pod, "signet");
    let args = strings(serve, "args");
    assert_eq!(args.first().map(String::as_str), Some("serve"));
    // Flags would override the configuration: then they are what must agree.
    let api_port = flag(&args, "--listen").map_or(api_port, |a| port_of(&a));
    let ocsp_port = flag(&args, "--responder-listen").map_or(ocsp_port, |a| port_of(&a));
    let ports = container_ports(serve);
    let numbers: BTreeSet<u16> = ports.values().copied().collect();
    assert_eq!(
        numbers,
        BTreeSet::from([api_port, ocsp_port]),
        "containerPorts vs signet.toml"
    );

    // The data directory `serve --dir` reads is the one the init container fills.
    let dir = flag(&args, "--dir").unwrap();
    let init = container(pod, "data-dir");
    let script = strings(init, "command").join(" ");
    assert!(script.contains("signet.toml") && script.contains("kubernetes-jwks.json"));
    let data_volume = volume_at(serve, "/var/lib/signet");
    assert_eq!(
        mount_of(init, &data_volume).as_deref(),
        Some("/var/lib/signet")
    );
    assert!(dir.starts_with("/var/lib/signet/") && script.contains(&dir));
    // The JWKS lands next to signet.toml, where jwks_file (relative) points.
    let provisioner = cfg["provisioners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"].as_str() == Some("kubernetes"))
        .unwrap();
    assert_eq!(
        provisioner["jwks_file"].as_str(),
        Some("kubernetes-jwks.json")
    );

    // Probes hit the API port.
    for probe in ["readinessProbe", "livenessProbe"] {
        let port = get(serve, &[probe, "httpGet", "port"]);
        let port = port
            .as_u64()
            .map(|p| u16::try_from(p).unwrap())
            .unwrap_or_else(|| ports[port.as_str().unwrap()]);
        assert_eq!(port, api_port, "{probe}");
    }

    // The Service forwards its ports to those container ports, and selects the pods.
    let svc = kind(&docs, "Service", "signet");
    let mut targets = BTreeSet::new();
    for p in seq(svc, &["spec", "ports"]) {
        let target = get(p, &["targetPort"]);
        let target = target
            .as_u64()
            .map(|t| u16::try_from(t).unwrap())
            .unwrap_or_else(|| {
                *ports
                    .get(target.as_str().unwrap())
                    .expect("named targetPort")
            });
        assert_eq!(
            get(p, &["port"]).as_u64(),
            Some(u64::from(target)),
            "port = targetPort keeps URLs simple"
        );
        targets.insert(target);
    }
    assert_eq!(targets, BTreeSet::from([api_port, ocsp_port]));
    let selector = get(svc, &["spec", "selector"]);
    let labels = get(deployment, &["spec", "template", "metadata", "labels"]);
    for (k, v) in selector.as_mapping().unwrap() {
        assert_eq!(
            labels.get(k.as_str().unwrap()),
            Some(v),
            "the Service selects the CA pods"
        );
    }

    // The CA's URL, its own certificate names and the URLs in certificates name the Service.
    let svc_host = format!(
        "{}.{}.svc",
        s(svc, &["metadata", "name"]),
        s(svc, &["metadata", "namespace"])
    );
    assert_eq!(
        cfg["server"]["url"].as_str(),
        Some(format!("https://{svc_host}:{api_port}").as_str())
    );
    let hostnames: Vec<&str> = cfg["server"]["hostnames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    assert!(hostnames.contains(&svc_host.as_str()), "{hostnames:?}");
    for key in ["ocsp", "ca_issuers", "crl"] {
        let url = cfg["urls"][key].as_str().unwrap();
        assert!(
            url.starts_with(&format!("http://{svc_host}:{ocsp_port}/")),
            "[urls] {key} = {url}"
        );
    }
    // Secrets are referenced, not inlined.
    let env = seq(serve, &["env"]);
    for var in ["SIGNET_DATABASE_URL", "SIGNET_CA_PASSPHRASE"] {
        let e = env
            .iter()
            .find(|e| s(e, &["name"]) == var)
            .unwrap_or_else(|| panic!("{var}"));
        assert!(
            e.get("valueFrom").is_some() && e.get("value").is_none(),
            "{var} comes from a Secret"
        );
    }
}

#[test]
fn the_example_workload_matches_the_ca() {
    let ca_docs = documents(&repo().join("deploy/kubernetes/signet.yaml"));
    let docs = documents(&repo().join("deploy/kubernetes/example-workload.yaml"));
    let cfg = signet_toml(&ca_docs);
    let provisioner = cfg["provisioners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"].as_str() == Some("kubernetes"))
        .expect("a kubernetes provisioner");
    let svc = kind(&ca_docs, "Service", "signet");
    let svc_host = format!(
        "{}.{}.svc",
        s(svc, &["metadata", "name"]),
        s(svc, &["metadata", "namespace"])
    );
    let svc_https = seq(svc, &["spec", "ports"])
        .into_iter()
        .find(|p| s(p, &["name"]) == "https")
        .map(|p| get(p, &["port"]).as_u64().unwrap())
        .unwrap();

    let deployment = docs
        .iter()
        .find(|d| s(d, &["kind"]) == "Deployment")
        .expect("a Deployment");
    let namespace = s(deployment, &["metadata", "namespace"]);
    let pod = pod_spec(deployment);
    let sa = s(pod, &["serviceAccountName"]);
    kind(&docs, "ServiceAccount", sa);
    let allowed: Vec<&str> = provisioner["namespaces"]
        .as_array()
        .map(|a| a.iter().map(|n| n.as_str().unwrap()).collect())
        .unwrap_or_default();
    assert!(
        allowed.is_empty() || allowed.contains(&namespace),
        "the provisioner admits namespace {namespace}"
    );

    let init = seq(pod, &["initContainers"]);
    let bootstrap = init
        .iter()
        .find(|c| strings(c, "args").first().map(String::as_str) == Some("bootstrap"))
        .expect("an init container running `signet bootstrap`");
    let renew = seq(pod, &["containers"])
        .into_iter()
        .find(|c| strings(c, "args").first().map(String::as_str) == Some("renew"))
        .expect("a sidecar running `signet renew`");
    let b_args = strings(bootstrap, "args");
    let r_args = strings(renew, "args");
    let b_env = environment(bootstrap, &docs, namespace);
    let r_env = environment(renew, &docs, namespace);

    // Both reach the CA through its Service, on its HTTPS port.
    for (args, env) in [(&b_args, &b_env), (&r_args, &r_env)] {
        let url =
            setting(args, env, "--ca-url", "SIGNET_CA_URL").expect("--ca-url or SIGNET_CA_URL");
        assert_eq!(url, format!("https://{svc_host}:{svc_https}"));
        assert_eq!(Some(url.as_str()), cfg["server"]["url"].as_str());
    }
    let fp = setting(
        &b_args,
        &b_env,
        "--root-fingerprint",
        "SIGNET_ROOT_FINGERPRINT",
    )
    .expect("a pinned root");
    assert!(fp.starts_with("sha256:"), "{fp}");

    // The projected token: audience = the provisioner's, path = bootstrap's --token-file.
    let token_file = setting(&b_args, &b_env, "--token-file", "SIGNET_TOKEN_FILE")
        .unwrap_or_else(|| "/var/run/secrets/tokens/signet-token".into());
    let (dir, file) = token_file.rsplit_once('/').unwrap();
    let token_volume = volume_at(bootstrap, dir);
    let volume = seq(pod, &["volumes"])
        .into_iter()
        .find(|v| s(v, &["name"]) == token_volume)
        .unwrap();
    let source = seq(volume, &["projected", "sources"])
        .into_iter()
        .find_map(|src| src.get("serviceAccountToken"))
        .expect("a projected serviceAccountToken");
    assert_eq!(s(source, &["path"]), file);
    assert_eq!(
        Some(s(source, &["audience"])),
        provisioner["audience"].as_str(),
        "token audience"
    );
    assert_eq!(token_file, "/var/run/secrets/tokens/signet-token");
    let expiration = get(source, &["expirationSeconds"]).as_u64().unwrap();
    assert!(
        (600..=3600).contains(&expiration),
        "the provisioner accepts tokens up to 1h old"
    );

    // bootstrap writes where renew reads and the app reads, on one shared emptyDir.
    let out =
        setting(&b_args, &b_env, "--dir", "SIGNET_DIR").unwrap_or_else(|| "/var/run/signet".into());
    let dir =
        setting(&r_args, &r_env, "--dir", "SIGNET_DIR").unwrap_or_else(|| "/var/run/signet".into());
    assert_eq!(out, dir);
    let certs = volume_at(bootstrap, &out);
    assert_eq!(volume_at(renew, &dir), certs);
    let volume = seq(pod, &["volumes"])
        .into_iter()
        .find(|v| s(v, &["name"]) == certs)
        .unwrap();
    assert!(
        volume.get("emptyDir").is_some(),
        "the certificates live in an emptyDir"
    );
    let app = seq(pod, &["containers"])
        .into_iter()
        .find(|c| s(c, &["name"]) == "app")
        .expect("the app container");
    assert_eq!(
        mount_of(app, &certs),
        Some(out.clone()),
        "the app sees the files"
    );

    // --signal needs a shared process namespace and the pid file on a shared volume.
    if let Some(pid_file) = flag(&r_args, "--pid-file") {
        assert_eq!(get(pod, &["shareProcessNamespace"]).as_bool(), Some(true));
        let (pid_dir, _) = pid_file.rsplit_once('/').unwrap();
        let v = volume_at(renew, pid_dir);
        assert!(
            mount_of(app, &v).is_some(),
            "the app writes its pid file where renew reads it"
        );
    }
    // One user for all containers (tls.key is 0600).
    for c in containers(pod) {
        assert!(
            get(c, &["securityContext"]).get("runAsUser").is_none(),
            "{} overrides the pod's user",
            s(c, &["name"])
        );
    }
}

#[test]
fn compose_ports_and_commands_agree() {
    let compose = documents(&repo().join("docker-compose.yml")).remove(0);
    let services = get(&compose, &["services"]);
    let service = |name: &str| get(services, &[name]);
    let published = |svc: &Value| -> BTreeMap<u16, u16> {
        seq(svc, &["ports"])
            .iter()
            .map(|p| {
                let (host, container) = p.as_str().unwrap().split_once(':').unwrap();
                (container.parse().unwrap(), host.parse().unwrap())
            })
            .collect()
    };
    let database_url = |svc: &Value| s(svc, &["environment", "SIGNET_DATABASE_URL"]).to_string();

    let signet = service("signet");
    let cmd = strings(signet, "command");
    assert_eq!(cmd[0], "serve");
    let listen = flag(&cmd, "--listen").unwrap();
    assert!(listen.starts_with("0.0.0.0:"));
    assert_eq!(
        published(signet).keys().copied().collect::<Vec<_>>(),
        [port_of(&listen)]
    );

    let responder = service("responder");
    let cmd = strings(responder, "command");
    assert_eq!(cmd[0], "responder");
    let listen = flag(&cmd, "--listen").unwrap();
    assert_eq!(listen, "0.0.0.0:8080");
    assert_eq!(
        published(responder).keys().copied().collect::<Vec<_>>(),
        [8080]
    );
    // The responder reads the CA's data directory from the same volume, and the same database.
    let dir = flag(&cmd, "--dir").unwrap();
    let volume_of = |svc: &Value| -> (String, String) {
        let v = seq(svc, &["volumes"])[0].as_str().unwrap().to_string();
        let mut parts = v.split(':');
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        )
    };
    let (sv, smount) = volume_of(signet);
    let (rv, rmount) = volume_of(responder);
    assert_eq!(sv, rv);
    assert_eq!(smount, rmount);
    assert_eq!(
        dir,
        format!("{smount}/signet-data"),
        "serve's default --dir in the image's WORKDIR"
    );
    assert!(dockerfile().contains(&format!("WORKDIR {smount}")));
    // The API replicas name the primary and the standby (libpq's multi-host form), so they
    // follow a promotion; the responder reads the primary, the other responder the standby
    // (filing its signer request on the primary).
    let both = "@postgres,postgres-standby/signet?target_session_attrs=read-write";
    let signet_2 = service("signet-2");
    for api in [signet, signet_2] {
        assert!(database_url(api).ends_with(both), "{}", database_url(api));
    }
    assert_eq!(s(signet_2, &["image"]), s(signet, &["image"]));
    assert!(
        database_url(responder).ends_with("@postgres/signet"),
        "the database is the postgres service"
    );
    let standby_responder = service("responder-standby");
    assert!(database_url(standby_responder).ends_with("@postgres-standby/signet"));
    assert_eq!(
        s(
            standby_responder,
            &["environment", "SIGNET_SIGNER_DATABASE_URL"]
        ),
        database_url(responder)
    );
    let cmd = strings(standby_responder, "command");
    assert_eq!(cmd[0], "responder");
    assert_eq!(flag(&cmd, "--dir"), Some(dir.clone()));
    assert_eq!(
        published(standby_responder)
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [port_of(&flag(&cmd, "--listen").unwrap())]
    );
    // The standby is a copy of the primary (pg_basebackup -R) under the application name
    // the primary waits for (synchronous replication).
    let standby = service("postgres-standby");
    let script = strings(standby, "entrypoint").join(" ");
    assert!(
        script.contains("pg_basebackup -h postgres ") && script.contains(" -R "),
        "{script}"
    );
    let primary_args = strings(service("postgres"), "command").join(" ");
    assert!(
        primary_args.contains("synchronous_standby_names=standby")
            && script.contains("application_name=standby"),
        "{primary_args}"
    );
    // One image for both.
    assert_eq!(s(signet, &["image"]), s(responder, &["image"]));
    // serve's own responder is off, so nothing else wants the port; the two never clash.
    assert_eq!(
        flag(&strings(signet, "command"), "--responder-listen").as_deref(),
        Some("off")
    );
    let pg = service("postgres");
    assert_eq!(s(pg, &["environment", "POSTGRES_DB"]), "signet");
}

/// The ConfigMap's signet.toml is accepted by the real configuration loader: `signet serve`
/// starts with it (it checks the whole file, loads the provisioners, including the
/// Kubernetes one with its JWKS, before it binds a socket).
#[test]
fn the_configmap_signet_toml_is_accepted_by_signet_serve() {
    let docs = documents(&repo().join("deploy/kubernetes/signet.yaml"));
    let cm = kind(&docs, "ConfigMap", "signet-config");
    let toml_text = s(cm, &["data", "signet.toml"]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("signet-data");
    let o = Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(["init", "--dir"])
        .arg(&data)
        .env_remove("SIGNET_CA_PASSPHRASE")
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::write(data.join("signet.toml"), toml_text).unwrap();
    // A cluster JWKS, as `kubectl get --raw /openid/v1/jwks` prints it.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = rcgen::PublicKeyData::der_bytes(&key);
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = serde_json::json!({"keys": [{"use": "sig", "kty": "EC", "kid": "k1", "crv": "P-256",
        "alg": "ES256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}]});
    std::fs::write(data.join("kubernetes-jwks.json"), jwks.to_string()).unwrap();

    // The listen addresses are checked above; here the API moves to port 0 (the server
    // reports the port it got) and the responder is off, and the database (PostgreSQL in the
    // cluster, from a Secret) moves to SQLite, as the Secret would.
    let sqlite = format!("sqlite://{}/signet.db", data.display());
    let mut server = common::Server::spawn_with(
        tmp.path(),
        &[("SIGNET_DATABASE_URL", &sqlite)],
        &[
            "serve",
            "--dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--responder-listen",
            "off",
        ],
    );
    let result = server.ready_or_exit_blocking().map(|_| ());
    let log = server.log();
    drop(server);
    if let Err(status) = result {
        panic!("signet serve exited with {status}: the ConfigMap's signet.toml is refused:\n{log}");
    }
    // The kubernetes provisioner was loaded (serve made no default token provisioner).
    assert!(
        !data.join("provisioners").join("default.key").exists(),
        "{log}"
    );
}

/// The data-dir init container's script, run by `sh` against a copy of the Secret's files in
/// a temporary directory: the keys and token land 0600, the certificates 0644, and an
/// earlier issuing CA kept by `signet ca new-issuing` is copied too (and nothing breaks
/// without one).
#[test]
fn the_init_container_script_copies_the_ca_files() {
    use std::os::unix::fs::PermissionsExt;
    let docs = documents(&repo().join("deploy/kubernetes/signet.yaml"));
    let pod = pod_spec(kind(&docs, "Deployment", "signet"));
    let init = container(pod, "data-dir");
    let command = strings(init, "command");
    assert_eq!(command[..2], ["sh", "-ec"], "{command:?}");
    let script = &command[2];
    for kept in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for (dir, files) in [
            (
                "etc/signet/ca",
                &[
                    "root_ca.crt",
                    "issuing_ca.crt",
                    "issuing_ca.key",
                    "admin.token",
                ][..],
            ),
            ("etc/signet/config", &["signet.toml"][..]),
            ("etc/signet/jwks", &["kubernetes-jwks.json"][..]),
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
            for f in files {
                std::fs::write(root.join(dir).join(f), f).unwrap();
            }
        }
        if kept {
            std::fs::write(root.join("etc/signet/ca/issuing_ca.4a5b.crt"), "old").unwrap();
            std::fs::write(root.join("etc/signet/ca/issuing_ca.4a5b.key"), "old key").unwrap();
        }
        std::fs::create_dir_all(root.join("var/lib/signet")).unwrap();
        let rooted = script
            .replace("/etc/signet", &format!("{}/etc/signet", root.display()))
            .replace(
                "/var/lib/signet",
                &format!("{}/var/lib/signet", root.display()),
            );
        let o = Command::new("sh").args(["-ec", &rooted]).output().unwrap();
        assert!(o.status.success(), "{kept}: {o:?}");
        let data = root.join("var/lib/signet/signet-data");
        let mode = |f: &str| {
            std::fs::metadata(data.join(f))
                .unwrap_or_else(|e| panic!("{kept}: {f}: {e}"))
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("."), 0o700);
        for f in ["issuing_ca.key", "admin.token"] {
            assert_eq!(mode(f), 0o600, "{f}");
        }
        for f in [
            "root_ca.crt",
            "issuing_ca.crt",
            "signet.toml",
            "kubernetes-jwks.json",
        ] {
            assert_eq!(mode(f), 0o644, "{f}");
        }
        assert_eq!(data.join("issuing_ca.4a5b.crt").exists(), kept);
        assert_eq!(data.join("issuing_ca.4a5b.key").exists(), kept);
        if kept {
            assert_eq!(mode("issuing_ca.4a5b.crt"), 0o644);
            assert_eq!(mode("issuing_ca.4a5b.key"), 0o600);
        }
    }
}

/// `ha.yaml`, the replicated layout: a PostgreSQL primary and a standby copied from it with
/// `pg_basebackup -R` under the name the primary waits for, Services selecting each, and
/// responders reading the standby (signer requests on the primary) with the CA
/// certificates only, on the port their Service, probes and arguments name. The API
/// Deployment of signet.yaml has several replicas.
#[test]
fn the_replicated_layout_agrees() {
    let docs = documents(&repo().join("deploy/kubernetes/ha.yaml"));
    let ca_docs = documents(&repo().join("deploy/kubernetes/signet.yaml"));
    let api = kind(&ca_docs, "Deployment", "signet");
    assert!(get(api, &["spec", "replicas"]).as_u64().unwrap() >= 2);

    // Each PostgreSQL Service selects its StatefulSet's pods.
    for name in ["postgres-primary", "postgres-standby"] {
        let set = kind(&docs, "StatefulSet", name);
        let svc = kind(&docs, "Service", name);
        let labels = get(set, &["spec", "template", "metadata", "labels"]);
        for (k, v) in get(svc, &["spec", "selector"]).as_mapping().unwrap() {
            assert_eq!(labels.get(k.as_str().unwrap()), Some(v), "{name}");
        }
        assert_eq!(s(set, &["spec", "serviceName"]), name);
    }
    let primary = pod_spec(kind(&docs, "StatefulSet", "postgres-primary"));
    let primary_args = strings(container(primary, "postgres"), "args").join(" ");
    let standby = pod_spec(kind(&docs, "StatefulSet", "postgres-standby"));
    let copy = strings(container(standby, "basebackup"), "command").join(" ");
    assert!(
        copy.contains("pg_basebackup -h postgres-primary -U replicator") && copy.contains(" -R "),
        "{copy}"
    );
    let app_name = primary_args
        .split_whitespace()
        .find_map(|a| a.strip_prefix("synchronous_standby_names="))
        .expect("synchronous replication");
    assert!(
        copy.contains(&format!("application_name={app_name}")),
        "{copy}"
    );
    // The primary's init script makes the role the standby copies with.
    let init = kind(&docs, "ConfigMap", "postgres-primary-init");
    let script = get(init, &["data"])
        .as_mapping()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect::<String>();
    assert!(
        script.contains("ROLE replicator WITH REPLICATION")
            && script.contains("replication replicator")
    );
    assert_eq!(
        mount_of(container(primary, "postgres"), "init").as_deref(),
        Some("/docker-entrypoint-initdb.d")
    );

    // The responders: the standby for reads, the primary for the signer request, both
    // from the Secret signet-env; listening where the Service and probes send.
    let deployment = kind(&docs, "Deployment", "signet-responder");
    let pod = pod_spec(deployment);
    let responder = container(pod, "responder");
    let args = strings(responder, "args");
    assert_eq!(args[0], "responder");
    let env = seq(responder, &["env"]);
    let secret_key = |var: &str| {
        let e = env
            .iter()
            .find(|e| s(e, &["name"]) == var)
            .unwrap_or_else(|| panic!("{var}"));
        assert_eq!(s(e, &["valueFrom", "secretKeyRef", "name"]), "signet-env");
        s(e, &["valueFrom", "secretKeyRef", "key"]).to_string()
    };
    assert_eq!(secret_key("SIGNET_DATABASE_URL"), "standby-database-url");
    assert_eq!(
        secret_key("SIGNET_SIGNER_DATABASE_URL"),
        "primary-database-url"
    );
    let port = port_of(&flag(&args, "--listen").unwrap());
    assert_eq!(
        container_ports(responder)
            .values()
            .copied()
            .collect::<Vec<_>>(),
        [port]
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            get(responder, &[probe, "httpGet", "port"]).as_u64(),
            Some(u64::from(port))
        );
    }
    assert_eq!(
        s(responder, &["readinessProbe", "httpGet", "path"]),
        "/readyz"
    );
    let svc = kind(&docs, "Service", "signet-responder");
    let labels = get(deployment, &["spec", "template", "metadata", "labels"]);
    for (k, v) in get(svc, &["spec", "selector"]).as_mapping().unwrap() {
        assert_eq!(labels.get(k.as_str().unwrap()), Some(v));
    }
    for p in seq(svc, &["spec", "ports"]) {
        assert_eq!(get(p, &["targetPort"]).as_u64(), Some(u64::from(port)));
    }
    // --dir is the Secret's certificates, and no key.
    let dir = flag(&args, "--dir").unwrap();
    let volume = volume_at(responder, &dir);
    let volume = seq(pod, &["volumes"])
        .into_iter()
        .find(|v| s(v, &["name"]) == volume)
        .unwrap();
    assert_eq!(s(volume, &["secret", "secretName"]), "signet-ca");
    let items: BTreeSet<&str> = seq(volume, &["secret", "items"])
        .iter()
        .map(|i| s(i, &["path"]))
        .collect();
    assert_eq!(items, BTreeSet::from(["issuing_ca.crt", "root_ca.crt"]));
}
