//! `deploy/`: every config there passes `grantmux check`, and every kustomization
//! renders (with `kubectl kustomize`) to manifests that keep the safety properties:
//! non-root, read-only root filesystem, no capabilities, probes on grantmux's admin
//! port, the proxy on loopback in the sidecar layout, secrets only from Secrets,
//! never a per-pod file store with more than one replica, with Redis a primary, a
//! replica and three Sentinels that grantmux finds by the names the manifests give
//! them and waits on for each write, and, where grantmux intercepts Zoom's names, its
//! CA key on a volume no other container mounts and an app that reaches the forward
//! proxy and trusts the CA through the shared bundle.
//!
//! These tests need kubectl. Without it they fail, loudly: they never skip.
//! Schema validation and the Dockerfile lint need tools from PyPI and live in
//! `deploy/check.sh`, which `.ci/run` runs after `cargo test`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// A syntactically valid store key (32 zero bytes, base64) for `store.key_env`.
const DUMMY_STORE_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const DUMMY_REDIS_URL: &str = "redis://:dummy-password@127.0.0.1:6379/0";

const SINGLE_REPLICA: &str = "kubernetes/sidecar/single-replica";
const REPLICATED: &str = "kubernetes/sidecar/replicated";
const CENTRAL: &str = "kubernetes/central";
const INTERCEPT: &str = "kubernetes/sidecar/intercept";
const ALL_LAYOUTS: [&str; 4] = [SINGLE_REPLICA, REPLICATED, CENTRAL, INTERCEPT];

/// The variables through which an app trusts grantmux's CA, each pointing at the
/// exported bundle: Node adds its certificates to its own roots; Python requests and
/// OpenSSL/Go replace theirs with it.
const CA_VARIABLES: [&str; 3] = ["NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

// ---------------------------------------------------------------------------
// (a) grantmux check on every config
// ---------------------------------------------------------------------------

fn toml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            toml_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
}

/// Every `*_env` key in a config, as (dotted key, variable name).
fn env_keys(value: &toml::Value, prefix: &str, found: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match value {
                    toml::Value::String(var) if key.ends_with("_env") => {
                        found.push((path, var.clone()));
                    }
                    _ => env_keys(value, &path, found),
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                env_keys(item, &format!("{prefix}[{i}]"), found);
            }
        }
        _ => {}
    }
}

fn parse_config(text: &str, what: &str) -> toml::Value {
    toml::from_str(text).unwrap_or_else(|e| panic!("{what}: not TOML: {e}"))
}

/// The variables a config names, each with a dummy value of the right shape.
fn dummy_env(config: &toml::Value) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    env_keys(config, "", &mut keys);
    keys.into_iter()
        .map(|(key, var)| {
            let value = match key.as_str() {
                "store.url_env" => DUMMY_REDIS_URL.to_owned(),
                "store.key_env" => DUMMY_STORE_KEY.to_owned(),
                // Distinct per variable: two callers may not share a key.
                _ => format!("dummy-{var}"),
            };
            (var, value)
        })
        .collect()
}

#[test]
fn every_config_under_deploy_passes_grantmux_check() {
    let mut files = Vec::new();
    toml_files(&deploy_dir(), &mut files);
    files.sort();
    assert!(files.len() >= ALL_LAYOUTS.len(), "configs found: {files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read config");
        let env = dummy_env(&parse_config(&text, &file.display().to_string()));
        let out = Command::new(env!("CARGO_BIN_EXE_grantmux"))
            .arg("check")
            .arg("--config")
            .arg(file)
            .env_clear()
            .envs(env)
            .output()
            .expect("run grantmux check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "{}: {stderr}",
            file.display()
        );
        assert_eq!(out.status.code(), Some(0), "{}", file.display());
    }
}

// ---------------------------------------------------------------------------
// (b) the rendered manifests
// ---------------------------------------------------------------------------

/// `kubectl kustomize deploy/<dir>`, one JSON value per object.
fn render(dir: &str) -> Vec<Value> {
    let path = deploy_dir().join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is needed to render deploy/{dir} ({e}); these tests do not skip")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/{dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize output is UTF-8");
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("kustomize output is YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or("")
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn workloads(objects: &[Value]) -> impl Iterator<Item = &Value> {
    objects
        .iter()
        .filter(|o| matches!(kind(o), "Deployment" | "StatefulSet" | "DaemonSet"))
}

fn pod_spec(workload: &Value) -> &Value {
    &workload["spec"]["template"]["spec"]
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    items(&pod["initContainers"])
        .iter()
        .chain(items(&pod["containers"]))
}

/// The grantmux container of a workload, and whether it is a native sidecar.
fn grantmux_container(workload: &Value) -> Option<(&Value, bool)> {
    let pod = pod_spec(workload);
    let is_grantmux = |c: &&Value| c["name"] == "grantmux";
    if let Some(c) = items(&pod["initContainers"]).iter().find(is_grantmux) {
        return Some((c, c["restartPolicy"] == "Always"));
    }
    items(&pod["containers"])
        .iter()
        .find(is_grantmux)
        .map(|c| (c, false))
}

/// A workload running grantmux, with its config as rendered into its ConfigMap.
struct Grantmux<'a> {
    workload: &'a Value,
    container: &'a Value,
    native_sidecar: bool,
    config: toml::Value,
}

fn grantmuxes(objects: &[Value]) -> Result<Vec<Grantmux<'_>>, String> {
    let mut found = Vec::new();
    for workload in workloads(objects) {
        if let Some((container, native_sidecar)) = grantmux_container(workload) {
            let config = rendered_config(objects, workload, container)?;
            found.push(Grantmux {
                workload,
                container,
                native_sidecar,
                config,
            });
        }
    }
    Ok(found)
}

/// Follows `--config FILE` to the volume mounted over it and the ConfigMap behind it.
fn rendered_config(objects: &[Value], workload: &Value, c: &Value) -> Result<toml::Value, String> {
    let args: Vec<&str> = items(&c["args"]).iter().filter_map(Value::as_str).collect();
    let file = args
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| Path::new(w[1]))
        .ok_or_else(|| format!("{}: grantmux has no --config argument", name(workload)))?;
    let text = mounted_file(objects, workload, c, file)?;
    Ok(parse_config(
        text,
        &format!("{}: {}", name(workload), file.display()),
    ))
}

/// The text of `file` as container `c` sees it: a key of the ConfigMap mounted over it.
fn mounted_file<'a>(
    objects: &'a [Value],
    workload: &Value,
    c: &Value,
    file: &Path,
) -> Result<&'a str, String> {
    let (mount, volume) = volume_over(workload, c, file)
        .ok_or_else(|| format!("{}: no volume holds {}", name(workload), file.display()))?;
    let map_name = volume["configMap"]["name"]
        .as_str()
        .ok_or_else(|| format!("{}: {} is not from a ConfigMap", name(workload), mount))?;
    let map = objects
        .iter()
        .find(|o| kind(o) == "ConfigMap" && name(o) == map_name)
        .ok_or_else(|| format!("ConfigMap {map_name} is not in the rendered output"))?;
    let rel = file.strip_prefix(mount).expect("mount is a prefix");
    let key = rel.to_str().unwrap_or_default();
    map["data"][key]
        .as_str()
        .ok_or_else(|| format!("ConfigMap {map_name} has no {key}"))
}

/// The container's mount whose path holds `file`, and the pod volume behind it.
fn volume_over<'a>(workload: &'a Value, c: &'a Value, file: &Path) -> Option<(&'a str, &'a Value)> {
    let mount = items(&c["volumeMounts"])
        .iter()
        .find(|m| m["mountPath"].as_str().is_some_and(|p| file.starts_with(p)))?;
    let volume = items(&pod_spec(workload)["volumes"])
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    Some((mount["mountPath"].as_str()?, volume))
}

fn config_str<'a>(config: &'a toml::Value, section: &str, key: &str) -> Option<&'a str> {
    config.get(section)?.get(key)?.as_str()
}

fn listen_addr(config: &toml::Value, key: &str) -> SocketAddr {
    config_str(config, "listen", key)
        .unwrap_or_else(|| panic!("the deploy configs set listen.{key} explicitly"))
        .parse()
        .expect("listen address")
}

fn backend(config: &toml::Value) -> &str {
    config_str(config, "store", "backend").unwrap_or("file")
}

fn replicas(workload: &Value) -> u64 {
    workload["spec"]["replicas"].as_u64().unwrap_or(1)
}

/// Every rule the rendered output of any layout must keep; one line per breach.
fn problems(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for workload in workloads(objects) {
        problems.extend(hardening(workload));
    }
    for object in objects {
        if kind(object) == "Secret" {
            problems.push(format!("Secret {} is in the manifests", name(object)));
        }
    }
    match grantmuxes(objects) {
        Ok(found) if found.is_empty() => problems.push("no workload runs grantmux".to_owned()),
        Ok(found) => {
            for g in &found {
                problems.extend(probes(g));
                problems.extend(secrets(g));
                problems.extend(store_rule(objects, g));
                problems.extend(interception(g));
            }
        }
        Err(e) => problems.push(e),
    }
    problems
}

/// Non-root, read-only root filesystem, no privilege escalation, no capabilities.
fn hardening(workload: &Value) -> Vec<String> {
    let pod = pod_spec(workload);
    let mut problems = Vec::new();
    for c in containers(pod) {
        let at = format!("{}/{}", name(workload), c["name"].as_str().unwrap_or("?"));
        let sc = &c["securityContext"];
        let non_root = sc["runAsNonRoot"]
            .as_bool()
            .or_else(|| pod["securityContext"]["runAsNonRoot"].as_bool());
        if non_root != Some(true) {
            problems.push(format!("{at}: runAsNonRoot is not true"));
        }
        for uid in [&sc["runAsUser"], &pod["securityContext"]["runAsUser"]] {
            if uid.as_u64() == Some(0) {
                problems.push(format!("{at}: runs as uid 0"));
            }
        }
        if sc["readOnlyRootFilesystem"] != true {
            problems.push(format!("{at}: readOnlyRootFilesystem is not true"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
        }
        if !items(&sc["capabilities"]["drop"]).contains(&Value::from("ALL")) {
            problems.push(format!("{at}: capabilities do not drop ALL"));
        }
    }
    problems
}

/// Startup, liveness and readiness probes, over HTTP, on the admin listener's port,
/// which must not be loopback: the kubelet probes the pod IP.
fn probes(g: &Grantmux<'_>) -> Vec<String> {
    let at = name(g.workload);
    let admin = listen_addr(&g.config, "admin");
    let mut problems = Vec::new();
    if admin.ip().is_loopback() {
        problems.push(format!(
            "{at}: listen.admin {admin} is loopback: probes cannot reach it"
        ));
    }
    let wanted = [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ];
    for (probe, path) in wanted {
        let get = &g.container[probe]["httpGet"];
        if get["path"] != path {
            problems.push(format!("{at}: {probe} is not an HTTP GET of {path}"));
        }
        if container_port(g.container, &get["port"]) != Some(admin.port()) {
            problems.push(format!(
                "{at}: {probe} is not on the admin port {}",
                admin.port()
            ));
        }
    }
    problems
}

/// A probe's port, by number or by the container port's name.
fn container_port(container: &Value, port: &Value) -> Option<u16> {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).ok();
    }
    let wanted = port.as_str()?;
    let port = items(&container["ports"])
        .iter()
        .find(|p| p["name"] == wanted)?;
    u16::try_from(port["containerPort"].as_u64()?).ok()
}

/// Secrets never inline: not in the config (no `store.url`, every `*_file` on a
/// Secret volume), and every variable the config names comes from a `secretKeyRef`,
/// or is assembled only from such variables (`redis://:$(REDIS_PASSWORD)@host`).
/// No other variable with a secret-sounding name has a literal value.
fn secrets(g: &Grantmux<'_>) -> Vec<String> {
    let at = name(g.workload);
    let mut problems = Vec::new();
    if config_str(&g.config, "store", "url").is_some() {
        problems.push(format!("{at}: store.url is inline; use store.url_env"));
    }
    problems.extend(secret_files(g));

    let mut from_secret: Vec<&str> = Vec::new();
    let mut defined: HashMap<&str, &Value> = HashMap::new();
    for var in items(&g.container["env"]) {
        let Some(var_name) = var["name"].as_str() else {
            continue;
        };
        defined.insert(var_name, var);
        if var["valueFrom"]["secretKeyRef"]["name"].is_string() {
            from_secret.push(var_name);
        } else if let Some(value) = var["value"].as_str() {
            let named = config_env_names(&g.config).contains(&var_name.to_owned());
            if (named || sounds_secret(var_name)) && !only_secret_refs(value, &from_secret) {
                problems.push(format!("{at}: {var_name} is set inline"));
            }
        }
    }
    for var in config_env_names(&g.config) {
        if !defined.contains_key(var.as_str()) {
            problems.push(format!(
                "{at}: the config names {var}, the container does not set it"
            ));
        }
    }
    problems
}

fn config_env_names(config: &toml::Value) -> Vec<String> {
    let mut keys = Vec::new();
    env_keys(config, "", &mut keys);
    keys.into_iter().map(|(_, var)| var).collect()
}

fn sounds_secret(var: &str) -> bool {
    ["SECRET", "PASSWORD", "TOKEN", "KEY", "AUTH", "CREDENTIAL"]
        .iter()
        .any(|word| var.to_uppercase().contains(word))
}

/// True when `value` refers to at least one Secret-backed variable (defined before
/// it, as the kubelet requires) and, with those references taken out, holds no
/// credentials of its own: nothing between a URL's `://` and `@` but `:`.
fn only_secret_refs(value: &str, from_secret: &[&str]) -> bool {
    let mut rest = value.to_owned();
    let mut refs = 0;
    for var in from_secret {
        let reference = format!("$({var})");
        refs += rest.matches(&reference).count();
        rest = rest.replace(&reference, "");
    }
    if refs == 0 || rest.contains("$(") {
        return false;
    }
    let userinfo = match rest.split_once("://") {
        Some((_, after)) => after.split_once('@').map_or("", |(user, _)| user),
        None => rest.as_str(),
    };
    userinfo.chars().all(|c| c == ':')
}

/// Every `*_file` key of the config names a file on a Secret volume.
fn secret_files(g: &Grantmux<'_>) -> Vec<String> {
    let mut files = Vec::new();
    file_keys(&g.config, "", &mut files);
    files
        .into_iter()
        // Certificates, not secrets: extra roots for Zoom, and the interception CA's
        // certificate (its key, intercept.ca_key_file, stays under this rule).
        .filter(|(key, _)| key != "zoom.ca_file" && key != "intercept.ca_cert_file")
        .filter(|(_, path)| {
            let on_secret = volume_over(g.workload, g.container, Path::new(path))
                .is_some_and(|(_, volume)| volume["secret"].is_object());
            !on_secret
        })
        .map(|(key, path)| {
            format!(
                "{}: {key} = {path} is not on a Secret volume",
                name(g.workload)
            )
        })
        .collect()
}

fn file_keys(value: &toml::Value, prefix: &str, found: &mut Vec<(String, String)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = format!("{prefix}{}{key}", if prefix.is_empty() { "" } else { "." });
                match value {
                    toml::Value::String(p) if key.ends_with("_file") => {
                        found.push((path, p.clone()));
                    }
                    _ => file_keys(value, &path, found),
                }
            }
        }
        toml::Value::Array(list) => {
            for (i, item) in list.iter().enumerate() {
                file_keys(item, &format!("{prefix}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The unsafe mix: a file store is per pod, so a workload that keeps one must have
/// exactly one replica, replace it with Recreate (never two at once), and keep the
/// store on a PersistentVolumeClaim in the manifests (not an emptyDir, which the next
/// pod would not find). Several replicas need the redis store.
fn store_rule(objects: &[Value], g: &Grantmux<'_>) -> Vec<String> {
    let at = name(g.workload);
    let mut problems = Vec::new();
    match backend(&g.config) {
        "file" => {
            if replicas(g.workload) != 1 || kind(g.workload) != "Deployment" {
                problems.push(format!(
                    "{at}: file store with {} replicas of a {}: each pod would hold its own grant",
                    replicas(g.workload),
                    kind(g.workload)
                ));
            }
            if g.workload["spec"]["strategy"]["type"] != "Recreate" {
                problems.push(format!("{at}: file store without the Recreate strategy"));
            }
            let path = config_str(&g.config, "store", "path").unwrap_or("./grantmux-state");
            let claim = volume_over(g.workload, g.container, Path::new(path))
                .and_then(|(_, v)| v["persistentVolumeClaim"]["claimName"].as_str());
            let claimed = claim.is_some_and(|c| {
                objects
                    .iter()
                    .any(|o| kind(o) == "PersistentVolumeClaim" && name(o) == c)
            });
            if !claimed {
                problems.push(format!(
                    "{at}: store.path {path} is not on a PersistentVolumeClaim"
                ));
            }
        }
        "redis" => {
            if config_str(&g.config, "store", "url_env").is_none() {
                problems.push(format!("{at}: redis store without store.url_env"));
            }
            problems.extend(redis_layout(objects, g));
        }
        other => problems.push(format!(
            "{at}: store.backend {other} keeps no grant across restarts"
        )),
    }
    problems
}

fn optional_listen_addr(config: &toml::Value, key: &str) -> Option<SocketAddr> {
    config_str(config, "listen", key).map(|a| a.parse().expect("listen address"))
}

/// Whether grantmux answers as Zoom's hosts: a forward proxy or a TLS listener.
fn intercepts(config: &toml::Value) -> bool {
    optional_listen_addr(config, "forward_proxy").is_some()
        || optional_listen_addr(config, "tls").is_some()
}

/// Where the interception CA's key lives: `intercept.ca_key_file`, or by default
/// `<store.path>/intercept-ca.key` with the file store (as grantmux resolves it).
fn ca_key_path(config: &toml::Value) -> Option<PathBuf> {
    if let Some(key) = config_str(config, "intercept", "ca_key_file") {
        return Some(PathBuf::from(key));
    }
    (backend(config) == "file").then(|| {
        let store = config_str(config, "store", "path").unwrap_or("./grantmux-state");
        Path::new(store).join("intercept-ca.key")
    })
}

/// The pod volume a container reaches `file` through, and the file's path inside it.
fn file_in_volume<'a>(
    workload: &'a Value,
    c: &'a Value,
    file: &Path,
) -> Option<(&'a str, PathBuf)> {
    let (mount, volume) = volume_over(workload, c, file)?;
    let rel = file.strip_prefix(mount).ok()?.to_owned();
    Some((volume["name"].as_str()?, rel))
}

/// The mount of volume `volume` in container `c`, if it has one.
fn mount_of<'a>(c: &'a Value, volume: &str) -> Option<&'a Value> {
    items(&c["volumeMounts"])
        .iter()
        .find(|m| m["name"] == volume)
}

fn env_value<'a>(c: &'a Value, var: &str) -> Option<&'a str> {
    items(&c["env"])
        .iter()
        .find(|v| v["name"] == var)
        .and_then(|v| v["value"].as_str())
}

/// With interception on: the CA key is on a volume grantmux mounts and no other
/// container of the pod does (a shared volume would hand the app, or anything in it,
/// a key that signs for Zoom's names), and the bundle is not beside it. In a sidecar
/// with a forward proxy, every app container goes through it (`HTTPS_PROXY`, with
/// loopback in `NO_PROXY`) and trusts the CA through [`CA_VARIABLES`], each naming
/// the file grantmux exports, on an emptyDir the app mounts read-only.
fn interception(g: &Grantmux<'_>) -> Vec<String> {
    if !intercepts(&g.config) {
        return Vec::new();
    }
    let at = name(g.workload);
    let pod = pod_spec(g.workload);
    let mut problems = Vec::new();
    let key_volume = match ca_key_path(&g.config) {
        None => {
            problems.push(format!(
                "{at}: interception on, but no place for the CA key"
            ));
            None
        }
        Some(key) => match file_in_volume(g.workload, g.container, &key) {
            None => {
                problems.push(format!(
                    "{at}: the interception CA key {} is on no volume of grantmux",
                    key.display()
                ));
                None
            }
            Some((volume, _)) => {
                for c in containers(pod).filter(|c| c["name"] != "grantmux") {
                    if mount_of(c, volume).is_some() {
                        problems.push(format!(
                            "{at}: the interception CA key {} is on volume {volume}, which {} mounts too",
                            key.display(),
                            c["name"].as_str().unwrap_or("?")
                        ));
                    }
                }
                Some(volume)
            }
        },
    };
    let bundle = config_str(&g.config, "intercept", "ca_bundle_export").map(Path::new);
    let bundle_at = bundle.and_then(|b| file_in_volume(g.workload, g.container, b));
    if let (Some(b), None) = (bundle, &bundle_at) {
        problems.push(format!(
            "{at}: intercept.ca_bundle_export {} is on no volume of grantmux",
            b.display()
        ));
    }
    if let (Some((volume, _)), Some(key_volume)) = (&bundle_at, key_volume) {
        if *volume == key_volume {
            problems.push(format!(
                "{at}: the CA bundle is on volume {volume}, beside the CA key"
            ));
        }
    }
    let Some(forward) = optional_listen_addr(&g.config, "forward_proxy") else {
        return problems;
    };
    if !g.native_sidecar {
        return problems;
    }
    if !forward.ip().is_loopback() {
        problems.push(format!(
            "{at}: listen.forward_proxy {forward} is not loopback"
        ));
    }
    let Some((bundle_volume, bundle_rel)) = bundle_at else {
        problems.push(format!(
            "{at}: a sidecar forward proxy without intercept.ca_bundle_export: the app cannot trust the CA"
        ));
        return problems;
    };
    let shared = items(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == bundle_volume)
        .is_some_and(|v| v["emptyDir"].is_object());
    if !shared {
        problems.push(format!(
            "{at}: the CA bundle's volume {bundle_volume} is not an emptyDir"
        ));
    }
    for app in items(&pod["containers"]) {
        let app_name = app["name"].as_str().unwrap_or("?");
        let proxy_url = format!("http://{forward}");
        for var in ["HTTPS_PROXY", "https_proxy"] {
            if env_value(app, var) != Some(proxy_url.as_str()) {
                problems.push(format!("{at}/{app_name}: {var} is not {proxy_url}"));
            }
        }
        for var in ["NO_PROXY", "no_proxy"] {
            let list: Vec<&str> = env_value(app, var)
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .collect();
            for host in ["localhost", "127.0.0.1"] {
                if !list.contains(&host) {
                    problems.push(format!("{at}/{app_name}: {var} lacks {host}"));
                }
            }
        }
        match mount_of(app, bundle_volume) {
            Some(m) if m["readOnly"] == true => {}
            Some(_) => problems.push(format!(
                "{at}/{app_name}: mounts {bundle_volume} writable: it could replace the bundle grantmux wrote"
            )),
            None => problems.push(format!("{at}/{app_name}: does not mount {bundle_volume}")),
        }
        for var in CA_VARIABLES {
            let target =
                env_value(app, var).and_then(|p| file_in_volume(g.workload, app, Path::new(p)));
            if target.as_ref().map(|(v, rel)| (*v, rel)) != Some((bundle_volume, &bundle_rel)) {
                problems.push(format!(
                    "{at}/{app_name}: {var} does not name the CA bundle grantmux exports"
                ));
            }
        }
    }
    problems
}

fn assert_no_problems(dir: &str, objects: &[Value]) {
    let problems = problems(objects);
    assert!(
        problems.is_empty(),
        "deploy/{dir}:\n  {}",
        problems.join("\n  ")
    );
}

fn the_grantmux(objects: &[Value]) -> Grantmux<'_> {
    let mut found = grantmuxes(objects).expect("grantmux config");
    assert_eq!(found.len(), 1, "one workload runs grantmux");
    found.remove(0)
}

#[test]
fn every_layout_keeps_the_safety_rules() {
    for dir in ALL_LAYOUTS {
        assert_no_problems(dir, &render(dir));
    }
}

/// The sidecar layout: grantmux is a native sidecar, its proxy is on loopback, and
/// the app reaches it there.
fn assert_sidecar(dir: &str, objects: &[Value]) {
    let g = assert_native_sidecar_on_loopback(dir, objects);
    let proxy = listen_addr(&g.config, "proxy");
    let app_env: Vec<&str> = items(&pod_spec(g.workload)["containers"])
        .iter()
        .flat_map(|c| items(&c["env"]))
        .filter_map(|v| v["value"].as_str())
        .collect();
    assert!(
        app_env
            .iter()
            .any(|v| v.starts_with(&format!("http://{proxy}"))),
        "{dir}: the app is not pointed at grantmux: {app_env:?}"
    );
}

/// grantmux is a native sidecar, and its proxy listener is on loopback and is the
/// URL it gives out.
fn assert_native_sidecar_on_loopback<'a>(dir: &str, objects: &'a [Value]) -> Grantmux<'a> {
    let g = the_grantmux(objects);
    assert!(
        g.native_sidecar,
        "{dir}: grantmux is not an init container with restartPolicy Always"
    );
    let proxy = listen_addr(&g.config, "proxy");
    assert!(
        proxy.ip().is_loopback(),
        "{dir}: listen.proxy {proxy} is not loopback"
    );
    let public = config_str(&g.config, "listen", "public_url").expect("public_url");
    assert_eq!(public, format!("http://{proxy}"), "{dir}");
    g
}

#[test]
fn single_replica_keeps_one_pod_with_the_file_store_on_a_claim() {
    let objects = render(SINGLE_REPLICA);
    assert_sidecar(SINGLE_REPLICA, &objects);
    let g = the_grantmux(&objects);
    assert_eq!(backend(&g.config), "file");
    assert_eq!(replicas(g.workload), 1);
    assert_eq!(g.workload["spec"]["strategy"]["type"], "Recreate");
}

/// The interception overlay: grantmux's forward proxy on loopback; the app goes
/// through it and trusts the CA through the bundle on the shared emptyDir; the CA key
/// stays on grantmux's state claim, which the app does not mount. (`problems`, run on
/// every layout, enforces the same; this test pins the overlay's concrete choices.)
#[test]
fn intercept_gives_the_app_the_forward_proxy_and_the_bundle_never_the_key() {
    let objects = render(INTERCEPT);
    assert_no_problems(INTERCEPT, &objects);
    let g = assert_native_sidecar_on_loopback(INTERCEPT, &objects);
    assert_eq!(backend(&g.config), "file");
    assert_eq!(replicas(g.workload), 1);
    assert_eq!(g.workload["spec"]["strategy"]["type"], "Recreate");

    let forward = optional_listen_addr(&g.config, "forward_proxy").expect("listen.forward_proxy");
    assert_eq!(forward, "127.0.0.1:3128".parse().expect("addr"));
    assert!(interception(&g).is_empty(), "{:?}", interception(&g));

    let pod = pod_spec(g.workload);
    let app = items(&pod["containers"])
        .iter()
        .find(|c| c["name"] == "app")
        .expect("the app container");
    assert_eq!(env_value(app, "HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
    let bundle = config_str(&g.config, "intercept", "ca_bundle_export").expect("ca_bundle_export");
    for var in CA_VARIABLES {
        assert_eq!(env_value(app, var), Some(bundle), "{var}");
    }
    let (shared, _) = file_in_volume(g.workload, app, Path::new(bundle)).expect("bundle volume");
    assert!(
        items(&pod["volumes"])
            .iter()
            .any(|v| v["name"] == shared && v["emptyDir"].is_object()),
        "the bundle is on an emptyDir"
    );

    let key = ca_key_path(&g.config).expect("CA key path");
    assert_eq!(key, Path::new("/var/lib/grantmux/intercept-ca.key"));
    let (key_volume, _) = file_in_volume(g.workload, g.container, &key).expect("key volume");
    assert_ne!(key_volume, shared, "the CA key is not on the shared volume");
    let claim = items(&pod["volumes"])
        .iter()
        .find(|v| v["name"] == key_volume)
        .and_then(|v| v["persistentVolumeClaim"]["claimName"].as_str());
    assert_eq!(
        claim,
        Some("grantmux-state"),
        "the CA key is on the state claim"
    );
    assert!(
        mount_of(app, key_volume).is_none(),
        "the app does not mount the state claim"
    );
    // The app's Zoom URLs are in its code: the base's URL settings are gone.
    assert_eq!(env_value(app, "ZOOM_API_URL"), None);
}

#[test]
fn replicated_uses_redis_with_sentinel() {
    let objects = render(REPLICATED);
    assert_sidecar(REPLICATED, &objects);
    let g = the_grantmux(&objects);
    assert_eq!(backend(&g.config), "redis");
    assert!(
        replicas(g.workload) > 1,
        "the replicated overlay runs several pods"
    );
    assert_redis_with_sentinel(REPLICATED, &objects, &g);
}

/// The Redis of the redis layouts: a primary and a replica, three Sentinels with
/// quorum 2, and grantmux finding the primary through them. `redis_layout` (run on
/// every layout by `problems`) enforces the rules; this pins the concrete choices.
fn assert_redis_with_sentinel(dir: &str, objects: &[Value], g: &Grantmux<'_>) {
    let problems = redis_layout(objects, g);
    assert!(
        problems.is_empty(),
        "deploy/{dir}:\n  {}",
        problems.join("\n  ")
    );

    let data = stateful_set(objects, REDIS_DATA).expect("the data StatefulSet");
    let sentinels = stateful_set(objects, REDIS_SENTINELS).expect("the Sentinel StatefulSet");
    assert_eq!(replicas(data), 2, "{dir}: a primary and one replica");
    assert_eq!(replicas(sentinels), 3, "{dir}: three Sentinels");
    let monitor = sentinel_monitor(objects, sentinels).expect("sentinel monitor");
    assert_eq!(monitor.master, "grantmux");
    assert_eq!(monitor.quorum, 2);

    let store = &g.config["store"];
    let listed: Vec<&str> = store["sentinels"]
        .as_array()
        .expect("store.sentinels")
        .iter()
        .filter_map(toml::Value::as_str)
        .collect();
    assert_eq!(
        listed,
        [
            "grantmux-redis-sentinel-0.grantmux-redis-sentinel:26379",
            "grantmux-redis-sentinel-1.grantmux-redis-sentinel:26379",
            "grantmux-redis-sentinel-2.grantmux-redis-sentinel:26379",
        ],
        "{dir}"
    );
    assert_eq!(store["sentinel_master"].as_str(), Some("grantmux"));
    assert_eq!(store["min_replicas_acked"].as_integer(), Some(1));
    assert_eq!(store["replica_ack_timeout"].as_str(), Some("1s"));
    assert_eq!(store["url_env"].as_str(), Some("REDIS_URL"));
    // No password in the config or the manifests: only the Secret's, by reference.
    assert!(store.get("url").is_none());
    let redis = containers(pod_spec(data))
        .next()
        .expect("the redis container");
    let args: Vec<&str> = items(&redis["args"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for pair in [
        ["--appendonly", "yes"],
        ["--appendfsync", "always"],
        ["--min-replicas-to-write", "1"],
        ["--min-replicas-max-lag", "10"],
    ] {
        assert!(
            args.windows(2).any(|w| w == pair),
            "{dir}: Redis lacks {pair:?}"
        );
    }
}

/// Every ingress rule of `policy` names a label the pods must carry, and `client`'s
/// pods carry the labels of at least one rule.
fn admits(policy: &Value, client: &Value) -> Result<(), String> {
    let labels = &client["spec"]["template"]["metadata"]["labels"];
    let mut admitted = false;
    for rule in items(&policy["spec"]["ingress"]) {
        let peers = items(&rule["from"]);
        if peers.is_empty() {
            return Err(format!("{} admits everyone", name(policy)));
        }
        for peer in peers {
            let wanted = peer["podSelector"]["matchLabels"]
                .as_object()
                .filter(|m| !m.is_empty())
                .ok_or_else(|| format!("{} admits unlabelled pods", name(policy)))?;
            admitted |= wanted.iter().all(|(k, v)| labels[k] == *v);
        }
    }
    if !admitted {
        return Err(format!("{} does not admit {}", name(policy), name(client)));
    }
    Ok(())
}

#[test]
fn central_is_a_service_behind_a_network_policy_with_redis() {
    let objects = render(CENTRAL);
    let g = the_grantmux(&objects);
    assert!(!g.native_sidecar);
    assert_eq!(backend(&g.config), "redis");
    assert_redis_with_sentinel(CENTRAL, &objects, &g);

    let proxy = listen_addr(&g.config, "proxy");
    let selector = &g.workload["spec"]["selector"]["matchLabels"];
    let service = objects
        .iter()
        .find(|o| kind(o) == "Service" && o["spec"]["selector"] == *selector)
        .expect("a Service for grantmux");
    let target = &items(&service["spec"]["ports"])[0]["targetPort"];
    assert_eq!(container_port(g.container, target), Some(proxy.port()));

    let policy = objects
        .iter()
        .find(|o| {
            kind(o) == "NetworkPolicy" && o["spec"]["podSelector"]["matchLabels"] == *selector
        })
        .expect("a NetworkPolicy for grantmux");
    let proxy_rule = items(&policy["spec"]["ingress"])
        .iter()
        .find(|r| items(&r["ports"]).iter().any(|p| p["port"] == proxy.port()))
        .expect("an ingress rule for the proxy port");
    for peer in items(&proxy_rule["from"]) {
        let labels = peer["podSelector"]["matchLabels"].as_object();
        assert!(
            labels.is_some_and(|l| !l.is_empty()),
            "only labelled clients: {peer}"
        );
    }
}

#[test]
fn the_sidecar_base_alone_has_no_store_and_no_config() {
    let objects = render("kubernetes/sidecar/base");
    assert!(
        !objects
            .iter()
            .any(|o| matches!(kind(o), "ConfigMap" | "PersistentVolumeClaim")),
        "the base must not be deployable without an overlay choosing the store"
    );
    assert!(
        grantmuxes(&objects).is_err(),
        "the base's grantmux has no config"
    );
}

// ---------------------------------------------------------------------------
// (c) Redis with Sentinel (deploy/kubernetes/redis)
// ---------------------------------------------------------------------------

/// The StatefulSets of the Redis layout: its data nodes (a primary and its replica)
/// and its Sentinels.
const REDIS_DATA: &str = "grantmux-redis";
const REDIS_SENTINELS: &str = "grantmux-redis-sentinel";

/// What the Sentinels should do with two data nodes and three Sentinels (issue 19).
const SENTINEL_SETTINGS: [(&str, &str); 2] = [
    ("down-after-milliseconds", "5000"),
    ("failover-timeout", "60000"),
];

fn stateful_set<'a>(objects: &'a [Value], wanted: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| kind(o) == "StatefulSet" && name(o) == wanted)
}

/// `<pod>.<Service>` for each pod of a StatefulSet: the names its pods keep when they
/// are replaced. Only when `spec.serviceName` is a headless Service in the output that
/// selects its pods and publishes them before they are ready (a replica syncing, a
/// Sentinel waiting for its primary must be reachable by name all the same).
fn stable_names(objects: &[Value], set: &Value) -> Result<Vec<String>, String> {
    let at = name(set);
    let service_name = set["spec"]["serviceName"]
        .as_str()
        .ok_or_else(|| format!("{at}: no serviceName"))?;
    let service = objects
        .iter()
        .find(|o| kind(o) == "Service" && name(o) == service_name)
        .ok_or_else(|| format!("{at}: its Service {service_name} is not in the output"))?;
    if service["spec"]["clusterIP"] != "None" {
        return Err(format!(
            "{at}: Service {service_name} is not headless: its pods get no names"
        ));
    }
    if service["spec"]["publishNotReadyAddresses"] != true {
        return Err(format!(
            "{at}: Service {service_name} does not publish pods before they are ready"
        ));
    }
    let labels = &set["spec"]["template"]["metadata"]["labels"];
    let selects = service["spec"]["selector"]
        .as_object()
        .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v));
    if !selects {
        return Err(format!(
            "{at}: Service {service_name} does not select its pods"
        ));
    }
    Ok((0..replicas(set))
        .map(|i| format!("{at}-{i}.{service_name}"))
        .collect())
}

/// The port a Service publishes under `port_name`.
fn service_port(objects: &[Value], set: &Value, port_name: &str) -> Option<u64> {
    let service_name = set["spec"]["serviceName"].as_str()?;
    let service = objects
        .iter()
        .find(|o| kind(o) == "Service" && name(o) == service_name)?;
    items(&service["spec"]["ports"])
        .iter()
        .find(|p| p["name"] == port_name)?["port"]
        .as_u64()
}

/// The single container of a Redis pod and the script it runs (`command: [sh, FILE]`,
/// FILE from a ConfigMap).
fn redis_script<'a>(objects: &'a [Value], set: &'a Value) -> Result<(&'a Value, &'a str), String> {
    let at = name(set);
    let c = containers(pod_spec(set))
        .next()
        .ok_or_else(|| format!("{at}: no container"))?;
    let command: Vec<&str> = items(&c["command"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let ["sh", file] = command.as_slice() else {
        return Err(format!("{at}: command is not [sh, SCRIPT]: {command:?}"));
    };
    Ok((c, mounted_file(objects, set, c, Path::new(file))?))
}

/// `VAR=value` at the start of a script's line, unquoted.
fn script_var<'a>(script: &'a str, var: &str) -> Option<&'a str> {
    let prefix = format!("{var}=");
    script
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(str::trim)
}

/// The Sentinels' `sentinel monitor` line: the primary's name, its port, the quorum.
struct Monitor {
    master: String,
    port: u64,
    quorum: u64,
}

/// The Sentinel config template (`template=` in the Sentinels' script), its settings
/// as words, comments left out.
fn sentinel_template<'a>(
    objects: &'a [Value],
    set: &'a Value,
) -> Result<Vec<Vec<&'a str>>, String> {
    let (c, script) = redis_script(objects, set)?;
    let template = script_var(script, "template")
        .ok_or_else(|| format!("{}: the script names no template", name(set)))?;
    let text = mounted_file(objects, set, c, Path::new(template))?;
    Ok(text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first().is_some_and(|w| !w.starts_with('#')))
        .collect())
}

fn sentinel_monitor(objects: &[Value], set: &Value) -> Result<Monitor, String> {
    let lines = sentinel_template(objects, set)?;
    let at = name(set);
    let monitor = lines
        .iter()
        .find(|w| w.starts_with(&["sentinel", "monitor"]))
        .ok_or_else(|| format!("{at}: no sentinel monitor line"))?;
    let [_, _, master, _host, port, quorum] = monitor.as_slice() else {
        return Err(format!(
            "{at}: sentinel monitor has not 4 arguments: {monitor:?}"
        ));
    };
    Ok(Monitor {
        master: (*master).to_owned(),
        port: port.parse().map_err(|_| format!("{at}: port {port}"))?,
        quorum: quorum
            .parse()
            .map_err(|_| format!("{at}: quorum {quorum}"))?,
    })
}

/// The rules of the Redis layout, with `g`'s config: one line per breach.
fn redis_layout(objects: &[Value], g: &Grantmux<'_>) -> Vec<String> {
    let (Some(data), Some(sentinels)) = (
        stateful_set(objects, REDIS_DATA),
        stateful_set(objects, REDIS_SENTINELS),
    ) else {
        return vec![format!(
            "no StatefulSets {REDIS_DATA} and {REDIS_SENTINELS}: the redis layouts bring Redis with Sentinel"
        )];
    };
    let mut problems = Vec::new();
    let names = match (
        stable_names(objects, data),
        stable_names(objects, sentinels),
    ) {
        (Ok(data_names), Ok(sentinel_names)) => Some((data_names, sentinel_names)),
        (data_names, sentinel_names) => {
            problems.extend(data_names.err());
            problems.extend(sentinel_names.err());
            None
        }
    };
    problems.extend(data_nodes(objects, data, g));
    problems.extend(sentinel_rules(objects, sentinels, data, g));
    if let Some((data_names, sentinel_names)) = names {
        problems.extend(names_agree(
            objects,
            (data, &data_names),
            (sentinels, &sentinel_names),
            g,
        ));
    }
    problems.extend(redis_password(objects, data, sentinels, g));
    for set in [data, sentinels] {
        let policy = objects.iter().find(|o| {
            kind(o) == "NetworkPolicy" && o["spec"]["podSelector"] == set["spec"]["selector"]
        });
        let Some(policy) = policy else {
            problems.push(format!("{}: no NetworkPolicy guards it", name(set)));
            continue;
        };
        // grantmux, and the Redis pods among themselves: replication, the Sentinels'
        // watch and gossip, a data node asking the Sentinels at start.
        for client in [g.workload, data, sentinels] {
            problems.extend(admits(policy, client).err());
        }
    }
    problems
}

/// The data nodes: a primary and at least one replica, the append-only file fsynced
/// per write, and the server refusing writes without the replicas grantmux waits for.
fn data_nodes(objects: &[Value], data: &Value, g: &Grantmux<'_>) -> Vec<String> {
    let at = name(data);
    let mut problems = Vec::new();
    let (c, script) = match redis_script(objects, data) {
        Ok(found) => found,
        Err(e) => return vec![e],
    };
    let args: Vec<&str> = items(&c["args"]).iter().filter_map(Value::as_str).collect();
    let arg = |key: &str| args.windows(2).find(|w| w[0] == key).map(|w| w[1]);
    for (key, value) in [("--appendonly", "yes"), ("--appendfsync", "always")] {
        if arg(key) != Some(value) {
            problems.push(format!("{at}: Redis runs without {key} {value}"));
        }
    }
    let acked = g.config["store"]
        .get("min_replicas_acked")
        .and_then(toml::Value::as_integer)
        .unwrap_or(0);
    if acked < 1 {
        problems.push(format!(
            "{}: store.min_replicas_acked is {acked}: a failover could lose an acknowledged rotation",
            name(g.workload)
        ));
    }
    if !u64::try_from(acked).is_ok_and(|n| n < replicas(data)) {
        problems.push(format!(
            "{at}: {} data nodes have fewer replicas than store.min_replicas_acked = {acked}",
            replicas(data)
        ));
    }
    let to_write = arg("--min-replicas-to-write");
    if to_write != Some(acked.to_string().as_str()) {
        problems.push(format!(
            "{at}: --min-replicas-to-write is {to_write:?}, not store.min_replicas_acked = {acked}"
        ));
    }
    if arg("--min-replicas-max-lag") != Some("10") {
        problems.push(format!("{at}: --min-replicas-max-lag is not 10"));
    }
    problems.extend(written_on_empty_dir(data, c, script));
    problems
}

/// The config file a Redis script writes (`conf=`) is on a writable emptyDir: the
/// root filesystem is read-only, and Redis and Sentinel rewrite their config file.
fn written_on_empty_dir(set: &Value, c: &Value, script: &str) -> Option<String> {
    let at = name(set);
    let Some(conf) = script_var(script, "conf") else {
        return Some(format!("{at}: the script names no config file (conf=)"));
    };
    let writable = volume_over(set, c, Path::new(conf)).is_some_and(|(mount, volume)| {
        let mounted = items(&c["volumeMounts"])
            .iter()
            .find(|m| m["mountPath"] == mount);
        volume["emptyDir"].is_object() && mounted.is_some_and(|m| m["readOnly"] != true)
    });
    (!writable).then(|| format!("{at}: its config file {conf} is not on a writable emptyDir"))
}

/// Three or more Sentinels, a majority quorum, the settings of [`SENTINEL_SETTINGS`],
/// host names (pod IPs change), and the name grantmux asks for.
fn sentinel_rules(
    objects: &[Value],
    sentinels: &Value,
    data: &Value,
    g: &Grantmux<'_>,
) -> Vec<String> {
    let at = name(sentinels);
    let mut problems = Vec::new();
    let count = replicas(sentinels);
    if count < 3 {
        problems.push(format!(
            "{at}: {count} replicas; a failover needs 3 Sentinels"
        ));
    }
    let (lines, monitor) = match (
        sentinel_template(objects, sentinels),
        sentinel_monitor(objects, sentinels),
    ) {
        (Ok(lines), Ok(monitor)) => (lines, monitor),
        (lines, monitor) => return lines.err().into_iter().chain(monitor.err()).collect(),
    };
    // A majority, so that a Sentinel cut off alone cannot fail over; fewer than all,
    // so that one Sentinel away (a node drain) does not prevent a failover.
    if monitor.quorum * 2 <= count || monitor.quorum >= count {
        problems.push(format!(
            "{at}: quorum {} of {count} Sentinels: not a majority that one Sentinel away leaves",
            monitor.quorum
        ));
    }
    let master = config_str(&g.config, "store", "sentinel_master");
    if master != Some(monitor.master.as_str()) {
        problems.push(format!(
            "{at}: the Sentinels monitor {:?}, store.sentinel_master is {master:?}",
            monitor.master
        ));
    }
    if Some(monitor.port) != service_port(objects, data, "redis") {
        problems.push(format!(
            "{at}: the Sentinels watch port {}, not the data nodes' Service port",
            monitor.port
        ));
    }
    let monitor_at = lines
        .iter()
        .position(|w| w.starts_with(&["sentinel", "monitor"]))
        .unwrap_or(0);
    for setting in ["resolve-hostnames", "announce-hostnames"] {
        let at_line = lines
            .iter()
            .position(|w| *w == ["sentinel", setting, "yes"]);
        if at_line.is_none_or(|i| i >= monitor_at) {
            problems.push(format!(
                "{at}: no sentinel {setting} yes before the monitor line"
            ));
        }
    }
    for (setting, value) in SENTINEL_SETTINGS {
        let wanted = ["sentinel", setting, monitor.master.as_str(), value];
        if !lines.iter().any(|w| *w == wanted) {
            problems.push(format!("{at}: no {}", wanted.join(" ")));
        }
    }
    let port_line = lines
        .iter()
        .find(|w| w[0] == "port")
        .map(|w| w[1..].join(" "));
    let c = containers(pod_spec(sentinels)).next();
    let container = c.and_then(|c| container_port(c, &Value::from("sentinel")));
    let service = service_port(objects, sentinels, "sentinel");
    if port_line.as_deref() != Some("26379") || container != Some(26379) || service != Some(26379) {
        problems.push(format!(
            "{at}: port {port_line:?} in the template, {container:?} in the pod, {service:?} in the Service: 26379 wanted"
        ));
    }
    match redis_script(objects, sentinels) {
        Ok((c, script)) => problems.extend(written_on_empty_dir(sentinels, c, script)),
        Err(e) => problems.push(e),
    }
    problems
}

/// The names agree: grantmux's `store.sentinels` are the Sentinel pods' stable names
/// with the Sentinel Service's port, and both StatefulSets' scripts are given
/// (`REDIS_HOSTS`, `SENTINEL_HOSTS`) the pods that exist, under the names they have.
fn names_agree(
    objects: &[Value],
    (data, data_names): (&Value, &[String]),
    (sentinels, sentinel_names): (&Value, &[String]),
    g: &Grantmux<'_>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let port = service_port(objects, sentinels, "sentinel").unwrap_or(0);
    let wanted: Vec<String> = sentinel_names
        .iter()
        .map(|n| format!("{n}:{port}"))
        .collect();
    let listed: Vec<&str> = g.config["store"]
        .get("sentinels")
        .and_then(toml::Value::as_array)
        .map(|list| list.iter().filter_map(toml::Value::as_str).collect())
        .unwrap_or_default();
    if listed != wanted {
        problems.push(format!(
            "{}: store.sentinels {listed:?} are not the Sentinels the manifests create {wanted:?}",
            name(g.workload)
        ));
    }
    for set in [data, sentinels] {
        for c in containers(pod_spec(set)) {
            for (var, names) in [
                ("REDIS_HOSTS", data_names),
                ("SENTINEL_HOSTS", sentinel_names),
            ] {
                let given: Vec<&str> = env_value(c, var)
                    .map(|v| v.split_whitespace().collect())
                    .unwrap_or_default();
                if given != names {
                    problems.push(format!(
                        "{}: {var} is {given:?}, the pods are {names:?}",
                        name(set)
                    ));
                }
            }
        }
    }
    problems
}

/// The Redis password exists only in the Secret grantmux's URL is built from: every
/// Redis container takes it from there (`secretKeyRef`), no argument and no template
/// carries one, and the scripts write it into config files from the variable.
fn redis_password(
    objects: &[Value],
    data: &Value,
    sentinels: &Value,
    g: &Grantmux<'_>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let url_var = config_str(&g.config, "store", "url_env").unwrap_or_default();
    let url = env_value(g.container, url_var).unwrap_or_default();
    let secret_of = |c: &Value, var: &str| -> Option<(String, String)> {
        let defined = items(&c["env"]).iter().find(|v| v["name"] == var)?;
        let r = &defined["valueFrom"]["secretKeyRef"];
        Some((
            r["name"].as_str()?.to_owned(),
            r["key"].as_str()?.to_owned(),
        ))
    };
    // The Secret behind the variable the URL's password comes from.
    let grantmux_secret = items(&g.container["env"])
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|var| url.contains(&format!("$({var})")))
        .find_map(|var| secret_of(g.container, var));
    let Some(secret) = grantmux_secret else {
        return vec![format!(
            "{}: {url_var} takes no password from a Secret",
            name(g.workload)
        )];
    };
    for set in [data, sentinels] {
        let at = name(set);
        let Ok((c, script)) = redis_script(objects, set) else {
            continue;
        };
        for var in items(&c["env"]) {
            let var_name = var["name"].as_str().unwrap_or("?");
            if !sounds_secret(var_name) {
                continue;
            }
            if secret_of(c, var_name).as_ref() != Some(&secret) {
                problems.push(format!(
                    "{at}: {var_name} is not from the Secret {}/{} that grantmux's URL uses",
                    secret.0, secret.1
                ));
            }
        }
        let args = items(&c["args"]).iter().filter_map(Value::as_str);
        for arg in args {
            if ["pass", "auth"]
                .iter()
                .any(|w| arg.to_lowercase().contains(w))
            {
                problems.push(format!("{at}: a password in its args ({arg})"));
            }
        }
        // Where the scripts write it: from the variable, into the file on the emptyDir.
        let password_lines: Vec<&str> = script
            .lines()
            .filter(|l| {
                ["requirepass", "masterauth", "auth-pass"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        if password_lines.is_empty()
            || password_lines
                .iter()
                .any(|l| !l.contains("\"$REDIS_PASSWORD\""))
        {
            problems.push(format!(
                "{at}: its script does not set the password from $REDIS_PASSWORD: {password_lines:?}"
            ));
        }
        if secret_of(c, "REDIS_PASSWORD").as_ref() != Some(&secret) {
            problems.push(format!("{at}: REDIS_PASSWORD is not from the Secret"));
        }
    }
    if let Ok(lines) = sentinel_template(objects, sentinels) {
        let inline = lines.iter().any(|w| {
            w.iter()
                .any(|word| ["requirepass", "masterauth", "auth-pass"].contains(word))
        });
        if inline {
            problems.push(format!(
                "{}: the Sentinel template carries a password",
                name(sentinels)
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// The rules bite: each breaks on a manifest changed the way a person might.
// ---------------------------------------------------------------------------

fn deployment_mut<'a>(objects: &'a mut [Value], dir: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| kind(o) == "Deployment")
        .unwrap_or_else(|| panic!("{dir}: no Deployment"))
}

fn assert_caught(objects: &[Value], expected: &str) {
    let problems = problems(objects);
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem with {expected:?}, got {problems:?}"
    );
}

#[test]
fn more_replicas_with_the_file_store_are_refused() {
    let mut objects = render(SINGLE_REPLICA);
    deployment_mut(&mut objects, SINGLE_REPLICA)["spec"]["replicas"] = Value::from(3);
    assert_caught(&objects, "each pod would hold its own grant");

    let mut objects = render(SINGLE_REPLICA);
    deployment_mut(&mut objects, SINGLE_REPLICA)["spec"]["strategy"]["type"] =
        Value::from("RollingUpdate");
    assert_caught(&objects, "without the Recreate strategy");

    let mut objects = render(SINGLE_REPLICA);
    let pod = &mut deployment_mut(&mut objects, SINGLE_REPLICA)["spec"]["template"]["spec"];
    for volume in pod["volumes"].as_array_mut().expect("volumes") {
        if volume["name"] == "grantmux-state" {
            *volume = serde_json::json!({ "name": "grantmux-state", "emptyDir": {} });
        }
    }
    assert_caught(&objects, "is not on a PersistentVolumeClaim");
}

#[test]
fn inline_secrets_and_weak_containers_are_caught() {
    let mut objects = render(REPLICATED);
    let pod = &mut deployment_mut(&mut objects, REPLICATED)["spec"]["template"]["spec"];
    let grantmux = &mut pod["initContainers"][0];
    for var in grantmux["env"].as_array_mut().expect("env") {
        if var["name"] == "REDIS_URL" {
            var["value"] = Value::from("redis://:hunter2@grantmux-redis:6379/0");
        }
        if var["name"] == "ZOOM_CLIENT_SECRET" {
            *var = serde_json::json!({ "name": "ZOOM_CLIENT_SECRET", "value": "s3cret" });
        }
    }
    grantmux["securityContext"]["readOnlyRootFilesystem"] = Value::from(false);
    grantmux["readinessProbe"]["httpGet"]["port"] = Value::from(8080);
    assert_caught(&objects, "REDIS_URL is set inline");
    assert_caught(&objects, "ZOOM_CLIENT_SECRET is set inline");
    assert_caught(&objects, "grantmux: readOnlyRootFilesystem is not true");
    assert_caught(&objects, "readinessProbe is not on the admin port");
}

#[test]
fn credentials_next_to_secret_references_are_caught() {
    let from_secret = ["REDIS_PASSWORD"];
    assert!(only_secret_refs(
        "redis://:$(REDIS_PASSWORD)@redis:6379/0",
        &from_secret
    ));
    assert!(!only_secret_refs(
        "redis://admin:$(REDIS_PASSWORD)@redis:6379/0",
        &from_secret
    ));
    assert!(!only_secret_refs("redis://:pw@redis:6379/0", &from_secret));
    assert!(!only_secret_refs("$(OTHER)", &from_secret));
}

/// The ConfigMap holding grantmux's proxy.toml, as rendered.
fn config_text_mut(objects: &mut [Value]) -> &mut Value {
    let map = objects
        .iter_mut()
        .find(|o| kind(o) == "ConfigMap" && name(o).starts_with("grantmux-config"))
        .expect("grantmux's ConfigMap");
    &mut map["data"]["proxy.toml"]
}

#[test]
fn a_shared_or_missing_interception_ca_is_caught() {
    // The app mounts grantmux's state claim, where the CA key lives.
    let mut objects = render(INTERCEPT);
    let pod = &mut deployment_mut(&mut objects, INTERCEPT)["spec"]["template"]["spec"];
    pod["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("app mounts")
        .push(serde_json::json!({ "name": "grantmux-state", "mountPath": "/state", "readOnly": true }));
    assert_caught(&objects, "grantmux-state, which app mounts too");

    // The CA key moved into the folder the app shares.
    let mut objects = render(INTERCEPT);
    let text = config_text_mut(&mut objects);
    let moved = text.as_str().expect("proxy.toml").replace(
        "[intercept]\n",
        "[intercept]\nca_cert_file = \"/grantmux-ca/ca.crt\"\nca_key_file = \"/grantmux-ca/ca.key\"\n",
    );
    *text = Value::from(moved);
    assert_caught(&objects, "which app mounts too");
    assert_caught(&objects, "beside the CA key");

    // The app trusts something else, bypasses the proxy, or may rewrite the bundle.
    let mut objects = render(INTERCEPT);
    let pod = &mut deployment_mut(&mut objects, INTERCEPT)["spec"]["template"]["spec"];
    let app = &mut pod["containers"][0];
    for var in app["env"].as_array_mut().expect("env") {
        if var["name"] == "SSL_CERT_FILE" {
            var["value"] = Value::from("/etc/ssl/certs/ca-certificates.crt");
        }
        if var["name"] == "HTTPS_PROXY" {
            var["value"] = Value::from("http://127.0.0.1:8080");
        }
    }
    for mount in app["volumeMounts"].as_array_mut().expect("mounts") {
        mount["readOnly"] = Value::from(false);
    }
    assert_caught(&objects, "SSL_CERT_FILE does not name the CA bundle");
    assert_caught(&objects, "HTTPS_PROXY is not http://127.0.0.1:3128");
    assert_caught(&objects, "mounts grantmux-ca writable");

    // The forward proxy on every address of the pod.
    let mut objects = render(INTERCEPT);
    let text = config_text_mut(&mut objects);
    let open = text.as_str().expect("proxy.toml").replace(
        "forward_proxy = \"127.0.0.1:3128\"",
        "forward_proxy = \"0.0.0.0:3128\"",
    );
    *text = Value::from(open);
    assert_caught(
        &objects,
        "listen.forward_proxy 0.0.0.0:3128 is not loopback",
    );
}

/// The rendered ConfigMap file `key` of the Redis layout's scripts.
fn redis_file_mut<'a>(objects: &'a mut [Value], key: &str) -> &'a mut Value {
    let map = objects
        .iter_mut()
        .find(|o| kind(o) == "ConfigMap" && name(o).starts_with("grantmux-redis-scripts"))
        .expect("the Redis scripts' ConfigMap");
    &mut map["data"][key]
}

fn stateful_set_mut<'a>(objects: &'a mut [Value], wanted: &str) -> &'a mut Value {
    objects
        .iter_mut()
        .find(|o| kind(o) == "StatefulSet" && name(o) == wanted)
        .unwrap_or_else(|| panic!("no StatefulSet {wanted}"))
}

fn replace_in(value: &mut Value, from: &str, to: &str) {
    let text = value.as_str().expect("a string");
    assert!(text.contains(from), "{from:?} not in {text}");
    *value = Value::from(text.replace(from, to));
}

#[test]
fn a_redis_layout_grantmux_cannot_follow_is_caught() {
    for dir in [REPLICATED, CENTRAL] {
        // grantmux lists Sentinels by names the manifests do not create, or asks for
        // another primary than they monitor.
        let mut objects = render(dir);
        replace_in(
            config_text_mut(&mut objects),
            "\"grantmux-redis-sentinel-0.grantmux-redis-sentinel:26379\"",
            "\"redis-sentinel-0.redis-sentinel:26379\"",
        );
        assert_caught(&objects, "store.sentinels");
        let mut objects = render(dir);
        replace_in(
            config_text_mut(&mut objects),
            "sentinel_master = \"grantmux\"",
            "sentinel_master = \"mymaster\"",
        );
        assert_caught(&objects, "store.sentinel_master is Some(\"mymaster\")");

        // grantmux does not wait for the replica, or Redis does not refuse writes
        // without one.
        let mut objects = render(dir);
        replace_in(
            config_text_mut(&mut objects),
            "min_replicas_acked = 1",
            "min_replicas_acked = 0",
        );
        assert_caught(&objects, "store.min_replicas_acked is 0");
        let mut objects = render(dir);
        let args =
            &mut pod_spec_mut(stateful_set_mut(&mut objects, REDIS_DATA))["containers"][0]["args"];
        for arg in args.as_array_mut().expect("args") {
            if arg == "--min-replicas-to-write" {
                *arg = Value::from("--min-replicas-max-lag");
            }
        }
        assert_caught(&objects, "--min-replicas-to-write is None");

        // Two Sentinels, a quorum of one, IPs instead of names, a shorter watch.
        let mut objects = render(dir);
        stateful_set_mut(&mut objects, REDIS_SENTINELS)["spec"]["replicas"] = Value::from(2);
        assert_caught(&objects, "2 replicas; a failover needs 3 Sentinels");
        assert_caught(&objects, "store.sentinels");
        assert_caught(&objects, "SENTINEL_HOSTS is");
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.conf"),
            "@PRIMARY@ 6379 2",
            "@PRIMARY@ 6379 1",
        );
        assert_caught(&objects, "quorum 1 of 3 Sentinels");
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.conf"),
            "@PRIMARY@ 6379 2",
            "@PRIMARY@ 6379 3",
        );
        assert_caught(&objects, "quorum 3 of 3 Sentinels");
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.conf"),
            "sentinel announce-hostnames yes",
            "sentinel announce-hostnames no",
        );
        assert_caught(&objects, "no sentinel announce-hostnames yes");
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.conf"),
            "down-after-milliseconds grantmux 5000",
            "down-after-milliseconds grantmux 30000",
        );
        assert_caught(
            &objects,
            "no sentinel down-after-milliseconds grantmux 5000",
        );

        // Pods without stable names: the Service got a cluster IP.
        let mut objects = render(dir);
        for o in objects.iter_mut() {
            if kind(o) == "Service" && name(o) == REDIS_DATA {
                o["spec"]["clusterIP"] = Value::Null;
            }
        }
        assert_caught(&objects, "is not headless");

        // The password inline: in the template, in the args, as a literal variable.
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.conf"),
            "sentinel parallel-syncs grantmux 1",
            "sentinel parallel-syncs grantmux 1\nsentinel auth-pass grantmux hunter2",
        );
        assert_caught(&objects, "the Sentinel template carries a password");
        let mut objects = render(dir);
        let redis = &mut pod_spec_mut(stateful_set_mut(&mut objects, REDIS_DATA))["containers"][0];
        redis["args"]
            .as_array_mut()
            .expect("args")
            .extend([Value::from("--requirepass"), Value::from("hunter2")]);
        for var in redis["env"].as_array_mut().expect("env") {
            if var["name"] == "REDISCLI_AUTH" {
                *var = serde_json::json!({ "name": "REDISCLI_AUTH", "value": "hunter2" });
            }
        }
        assert_caught(&objects, "a password in its args (--requirepass)");
        assert_caught(
            &objects,
            "REDISCLI_AUTH is not from the Secret grantmux-redis/password",
        );

        // The Sentinels' config on the read-only ConfigMap: Sentinel cannot rewrite it.
        let mut objects = render(dir);
        replace_in(
            redis_file_mut(&mut objects, "sentinel.sh"),
            "conf=/run/sentinel/sentinel.conf",
            "conf=/etc/grantmux-redis/sentinel.conf",
        );
        assert_caught(&objects, "is not on a writable emptyDir");
    }
}

fn pod_spec_mut(workload: &mut Value) -> &mut Value {
    &mut workload["spec"]["template"]["spec"]
}
