//! The container files agree with each other and with rowstream: no container engine runs on
//! the CI machines, so `docker-compose.yml`, the `Dockerfile` and the configs the compose file
//! mounts are read here and checked against each other, and the configs (with the environment
//! the compose file gives each rowstream container) are loaded by `rowstream validate`.
use serde_yaml_ng::Value as Y;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn compose() -> Y {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker-compose.yml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn s(v: &Y) -> String {
    match v {
        Y::String(x) => x.clone(),
        Y::Number(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn env_of(svc: &Y) -> BTreeMap<String, String> {
    svc["environment"]
        .as_mapping()
        .map(|m| m.iter().map(|(k, v)| (s(k), s(v))).collect())
        .unwrap_or_default()
}

fn list(v: &Y) -> Vec<String> {
    v.as_sequence()
        .map(|q| q.iter().map(s).collect())
        .unwrap_or_default()
}

/// `host:port` of a URL (`postgres://u:p@host:5432/db`).
fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|x| x.1).unwrap_or(rest);
    let hp = rest.split(['/', '?']).next().unwrap();
    let (h, p) = hp.rsplit_once(':').unwrap();
    (h.to_string(), p.parse().unwrap())
}

/// `rowstream validate` of `cfg` with the environment `env`: the effective config as TOML.
fn validate(cfg: &Path, env: &BTreeMap<String, String>) -> toml::Table {
    let out = Command::new(env!("CARGO_BIN_EXE_rowstream"))
        .args(["validate", "--config"])
        .arg(cfg)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}{stdout}",
        cfg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.parse().unwrap()
}

#[test]
fn compose_file_dockerfile_and_configs_agree() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    let names: Vec<String> = services.keys().map(s).collect();
    for want in [
        "kafka",
        "postgres",
        "mysql",
        "rowstream-postgres",
        "rowstream-mysql",
    ] {
        assert!(names.contains(&want.to_string()), "no service {want}");
        assert!(
            !c["services"][want]["healthcheck"]["test"].is_null(),
            "service {want} has no health check"
        );
    }

    // Kafka: KRaft single node, each advertised listener is one it listens on, and the one
    // the containers use names the service
    let kafka = env_of(&c["services"]["kafka"]);
    assert!(c["services"]["kafka"]["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    assert_eq!(kafka["KAFKA_PROCESS_ROLES"], "broker,controller");
    let listeners: BTreeMap<String, u16> = kafka["KAFKA_LISTENERS"]
        .split(',')
        .map(|l| {
            let (name, addr) = l.split_once("://").unwrap();
            (
                name.to_string(),
                addr.rsplit_once(':').unwrap().1.parse().unwrap(),
            )
        })
        .collect();
    let protocols: Vec<&str> = kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
        .split(',')
        .map(|p| p.split_once(':').unwrap().0)
        .collect();
    for name in listeners.keys() {
        assert!(protocols.contains(&name.as_str()), "{name} has no protocol");
    }
    let mut internal = None;
    for l in kafka["KAFKA_ADVERTISED_LISTENERS"].split(',') {
        let (name, addr) = l.split_once("://").unwrap();
        let (host, port) = host_port(&format!("x://{addr}"));
        assert_eq!(listeners.get(name), Some(&port), "advertised {l}");
        if host == "kafka" {
            internal = Some(format!("{host}:{port}"));
        }
    }
    let internal = internal.expect("an advertised listener for the containers (kafka:PORT)");
    assert_eq!(
        kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"],
        format!(
            "1@kafka:{}",
            listeners[&kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]]
        )
    );
    assert!(listeners.contains_key(&kafka["KAFKA_INTER_BROKER_LISTENER_NAME"]));
    let published: Vec<String> = list(&c["services"]["kafka"]["ports"]);
    for p in &published {
        let (host_side, container_side) = p.split_once(':').unwrap();
        assert_eq!(host_side, container_side, "{p}");
        assert!(
            kafka["KAFKA_ADVERTISED_LISTENERS"].contains(&format!("localhost:{host_side}")),
            "published port {p} is not advertised as localhost"
        );
    }

    // the databases: logical decoding; ROW binlog with GTIDs on MySQL 8.4
    let pg_cmd = list(&c["services"]["postgres"]["command"]);
    assert!(
        pg_cmd.contains(&"wal_level=logical".to_string()),
        "{pg_cmd:?}"
    );
    assert!(c["services"]["mysql"]["image"].as_str().unwrap() == "mysql:8.4");
    let my_cmd = list(&c["services"]["mysql"]["command"]);
    for flag in [
        "--binlog-format=ROW",
        "--binlog-row-image=FULL",
        "--gtid-mode=ON",
        "--enforce-gtid-consistency=ON",
    ] {
        assert!(my_cmd.contains(&flag.to_string()), "mysql lacks {flag}");
    }
    let mysql_server_id: u32 = my_cmd
        .iter()
        .find_map(|f| f.strip_prefix("--server-id="))
        .expect("--server-id")
        .parse()
        .unwrap();

    // each rowstream container: its mounted config plus its environment loads, and points at
    // the services the compose file runs, with the user its init script creates
    let image_env = dockerfile_env();
    for (svc, db_svc, db_port, init) in [
        (
            "rowstream-postgres",
            "postgres",
            5432,
            "docker/postgres-init.sql",
        ),
        ("rowstream-mysql", "mysql", 3306, "docker/mysql-init.sql"),
    ] {
        let r = &c["services"][svc];
        assert_eq!(s(&r["build"]), ".", "{svc} builds the Dockerfile");
        for dep in [db_svc, "kafka"] {
            assert_eq!(
                s(&r["depends_on"][dep]["condition"]),
                "service_healthy",
                "{svc} waits for {dep}"
            );
        }
        assert_eq!(
            list(&r["healthcheck"]["test"]),
            ["CMD", "/usr/local/bin/rowstream", "health", "--ready"]
        );
        let mut cfg_file = None;
        for v in list(&r["volumes"]) {
            let parts: Vec<&str> = v.split(':').collect();
            if parts[0].starts_with("./") {
                assert!(
                    Path::new(ROOT).join(parts[0]).is_file(),
                    "{svc} mounts {} which is not in the repository",
                    parts[0]
                );
                if parts[1] == image_env["ROWSTREAM_CONFIG"] {
                    cfg_file = Some(Path::new(ROOT).join(parts[0]));
                }
            } else {
                // a named volume, declared, on the image's state dir
                assert!(
                    c["volumes"].as_mapping().unwrap().contains_key(parts[0]),
                    "{v}"
                );
                assert_eq!(parts[1], image_env["ROWSTREAM_STATE__DIR"], "{svc}: {v}");
            }
        }
        let cfg_file = cfg_file.unwrap_or_else(|| {
            panic!(
                "{svc} mounts no config at {} (ROWSTREAM_CONFIG of the image)",
                image_env["ROWSTREAM_CONFIG"]
            )
        });
        // the image's environment, then the service's (compose's order)
        let mut env = image_env.clone();
        env.remove("ROWSTREAM_CONFIG");
        env.extend(env_of(r));
        for k in env_of(r).keys() {
            assert!(k.starts_with("ROWSTREAM_"), "{svc}: {k}");
        }
        let eff = validate(&cfg_file, &env);
        let url = env["ROWSTREAM_SOURCE__URL"].clone();
        assert!(eff["source"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&url[..url.find("://").unwrap() + 3]));
        assert_eq!(host_port(&url), (db_svc.to_string(), db_port), "{svc}");
        assert!(
            c["services"][db_svc]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| s(p).ends_with(&format!(":{db_port}"))),
            "{db_svc} listens on {db_port}"
        );
        assert_eq!(eff["kafka"]["brokers"].as_str().unwrap(), internal, "{svc}");
        assert_eq!(eff["state"]["dir"].as_str().unwrap(), "/state");
        // the database name and user of the URL are what the database container creates
        let db_name = url.rsplit('/').next().unwrap();
        let db_env = env_of(&c["services"][db_svc]);
        assert!(
            db_env.values().any(|v| v == db_name),
            "{db_svc} creates no database {db_name}"
        );
        let user = url
            .split_once("://")
            .unwrap()
            .1
            .split([':', '@'])
            .next()
            .unwrap();
        let password = url.split_once("://").unwrap().1.split_once(':').unwrap().1;
        let password = password.split('@').next().unwrap();
        let init_sql = std::fs::read_to_string(Path::new(ROOT).join(init)).unwrap();
        assert!(
            init_sql.contains(&format!(
                "ROLE {user} WITH LOGIN REPLICATION PASSWORD '{password}'"
            )) || init_sql.contains(&format!("USER '{user}'@'%' IDENTIFIED BY '{password}'")),
            "{init} does not create {user} with the URL's password"
        );
        // the admin listener is the port the health check and the published port use
        let listen = eff["admin"]["listen"].as_str().unwrap();
        let port = listen.rsplit_once(':').unwrap().1;
        assert!(
            list(&r["ports"])
                .iter()
                .any(|p| p.ends_with(&format!(":{port}"))),
            "{svc} publishes {port}"
        );
        if svc == "rowstream-mysql" {
            assert_ne!(
                eff["source"]["server_id"].as_integer().unwrap() as u32,
                mysql_server_id,
                "rowstream's server_id must differ from the server's"
            );
        } else {
            // a publication the (non-superuser) replication user can use exists
            let publication = eff["source"]["publication"].as_str().unwrap();
            assert!(
                init_sql.contains(&format!("CREATE PUBLICATION {publication} FOR ALL TABLES")),
                "{init} creates no publication {publication}"
            );
        }
    }
    // the published host ports do not collide
    let mut host_ports: Vec<String> = services
        .values()
        .flat_map(|v| list(&v["ports"]))
        .map(|p| p.split(':').next().unwrap().to_string())
        .collect();
    let n = host_ports.len();
    host_ports.sort();
    host_ports.dedup();
    assert_eq!(host_ports.len(), n, "a host port is published twice");
}

/// The `ENV` of the Dockerfile's last stage, after checking the image's shape: two stages, the
/// near-static build, a base without a shell, a non-root user, exec-form entry point.
fn dockerfile_env() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    // continuation lines joined, comments dropped
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let lines: Vec<&str> = joined.lines().map(str::trim).collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert!(
        lines[last].contains("distroless"),
        "the run stage has no shell: {}",
        lines[last]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--no-default-features --features vendored")),
        "the binary is built near-static"
    );
    let stage = &lines[last..];
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the run stage");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(stage
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT [\"/usr/local/bin/rowstream\"]")));
    assert!(stage
        .iter()
        .any(|l| l.starts_with("HEALTHCHECK")
            && l.contains("[\"/usr/local/bin/rowstream\", \"health\"")));
    let mut env = BTreeMap::new();
    for l in stage.iter().filter_map(|l| l.strip_prefix("ENV ")) {
        for kv in l.split_whitespace() {
            let (k, v) = kv.split_once('=').unwrap();
            env.insert(k.to_string(), v.to_string());
        }
    }
    let volume = stage
        .iter()
        .find_map(|l| l.strip_prefix("VOLUME "))
        .expect("VOLUME");
    assert_eq!(env["ROWSTREAM_STATE__DIR"], volume);
    // the image's settings load as they are
    let cfg = std::env::temp_dir().join("rowstream-test-image.toml");
    std::fs::write(
        &cfg,
        "[source]\ntype = \"postgres\"\nurl = \"postgres://u@db/shop\"\n[kafka]\nbrokers = \"k:9092\"\n",
    )
    .unwrap();
    let mut e = env.clone();
    e.remove("ROWSTREAM_CONFIG");
    validate(&cfg, &e);
    env
}
