//! `rowstream worker`: connectors added, replaced and deleted over the Kafka Connect REST API,
//! configs kept in Kafka, and distributed workers sharing connectors and failing over.
mod common;

use common::*;

/// `rowstream worker`: connectors added over REST (a Postgres and a MariaDB one) stream; a
/// bad config is refused with every problem listed, a second POST of a name with 409; DELETE
/// stops and forgets one; after a kill -9 the restarted worker reads its connector configs
/// back from Kafka and the remaining connector resumes: rows written meanwhile arrive.
#[tokio::test(flavor = "multi_thread")]
async fn worker_runs_connectors_added_over_rest() {
    use mysql_async::prelude::*;
    let name = "rs_worker";
    let pg_name = "rs_worker_pg";
    let my_name = "rs_worker_my";
    let pg = fresh_db(pg_name).await;
    pg.batch_execute("CREATE TABLE t(id int primary key); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let mut my = fresh_mydb(my_name).await;
    my.query_drop("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);")
        .await
        .unwrap();
    let addr = free_addr();
    let run = run_id();
    let worker_toml = format!(
        "[worker]\nlisten = \"{addr}\"\ntoken = \"s3cret\"\nconfig_topic = \"{name}-{run}-configs\"\n[kafka]\nbrokers = \"{BROKER}\"\n[state]\ntopic = \"{name}-{run}-offsets\"\nhistory_topic = \"{name}-{run}-history\"\n"
    );
    state_dir(name);
    let mut w = Rowstream::start_worker(name, &worker_toml);
    let post = |body: serde_json::Value| {
        let addr = addr.clone();
        move || {
            http(
                &addr,
                "POST",
                "/connectors",
                Some("s3cret"),
                &body.to_string(),
            )
        }
    };
    // the REST listener comes up once the config topic is read
    wait_for(60, "the worker's REST API", || async {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    let pg_cfg = serde_json::json!({
        "source.type": "postgres",
        "source.url": format!("{PG}/{pg_name}"),
        "source.slot": pg_name,
        "source.publication": pg_name,
        "kafka.topic": format!("{pg_name}-{run}.{{schema}}.{{table}}"),
    });
    let (code, body) = post(serde_json::json!({ "name": pg_name, "config": pg_cfg }))();
    assert_eq!(code, 201, "{body}");
    let (code, body) = post(serde_json::json!({ "name": pg_name, "config": pg_cfg }))();
    assert_eq!(code, 409, "{body}");
    let (code, body) = post(serde_json::json!({ "name": "bad", "config": {
        "source.type": "postgres",
        "kafka.partitons": "3",
        "snapshot.chunk_pages": "many",
        "state.dir": "/tmp/x",
    }}))();
    assert_eq!(code, 400, "{body}");
    for needle in [
        "source.url",
        "kafka.partitons",
        "kafka.partitions",
        "snapshot.chunk_pages",
        "state.dir",
    ] {
        assert!(body.contains(needle), "`{needle}` named in: {body}");
    }
    let my_cfg = serde_json::json!({
        "source.type": "mysql",
        "source.url": format!("{MY}/{my_name}"),
        "source.server_id": "6201",
        "kafka.topic": format!("{my_name}-{run}.{{db}}.{{table}}"),
    });
    let (code, body) = post(serde_json::json!({ "name": my_name, "config": my_cfg }))();
    assert_eq!(code, 201, "{body}");
    let (_, body) = http(&addr, "GET", "/connectors", None, "");
    let mut names: Vec<String> = serde_json::from_str(&body).unwrap();
    names.sort();
    assert_eq!(names, [my_name, pg_name]);
    let mut pr = Reader::new(&format!("{pg_name}-{run}.public.t"));
    let mut mr = Reader::new(&format!("{my_name}-{run}.{my_name}.t"));
    pr.until(60, "the Postgres snapshot", |x| count_data(x) >= 1);
    mr.until(60, "the MariaDB snapshot", |x| count_data(x) >= 1);
    wait_for(60, "both RUNNING", || async {
        [pg_name, my_name].iter().all(|n| {
            let (_, b) = http(&addr, "GET", &format!("/connectors/{n}/status"), None, "");
            b.contains("\"RUNNING\"")
        })
    })
    .await;
    // the config as Connect keeps it: the submitted keys, text values, its name, the password
    // masked; the same in the connector's info and its task
    let get_json = |path: &str| {
        let (code, body) = http(&addr, "GET", path, None, "");
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let masked_url = format!("{MY}/{my_name}").replacen(":rowstream@", ":***@", 1);
    let shown = serde_json::json!({
        "name": my_name,
        "source.type": "mysql",
        "source.url": masked_url,
        "source.server_id": "6201",
        "kafka.topic": format!("{my_name}-{run}.{{db}}.{{table}}"),
    });
    assert_eq!(get_json(&format!("/connectors/{my_name}/config")), shown);
    assert_eq!(
        get_json(&format!("/connectors/{my_name}")),
        serde_json::json!({"name": my_name, "config": shown, "tasks": [{"connector": my_name, "task": 0}], "type": "source"})
    );
    assert_eq!(
        get_json(&format!("/connectors/{my_name}/tasks")),
        serde_json::json!([{"id": {"connector": my_name, "task": 0}, "config": shown}])
    );
    // GET then PUT with one setting changed (the way tools change one): 200, the masked
    // password sent back keeps the real one, so the restarted connector still connects
    let mut changed = shown.clone();
    changed["snapshot.chunk_rows"] = serde_json::json!("5000");
    let (code, body) = http(
        &addr,
        "PUT",
        &format!("/connectors/{my_name}/config"),
        Some("s3cret"),
        &changed.to_string(),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["config"],
        changed
    );
    wait_for(60, "RUNNING again with the stored password", || async {
        let (_, b) = http(
            &addr,
            "GET",
            &format!("/connectors/{my_name}/status"),
            None,
            "",
        );
        b.contains("\"RUNNING\"") && !b.contains("FAILED")
    })
    .await;
    let (code, body) = http(
        &addr,
        "PUT",
        &format!("/connectors/{my_name}/config"),
        Some("s3cret"),
        &serde_json::json!({"name": "other", "source.type": "mysql"}).to_string(),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(
            "Connector name configuration (other) doesn't match connector name in the URL"
        ),
        "{body}"
    );
    // health and metrics cover every connector, a labelled series each
    wait_for(30, "healthy", || async {
        http_get(&addr, "/healthz").contains("ok: 2 connector(s)")
    })
    .await;
    let metrics = http_get(&addr, "/metrics");
    for n in [pg_name, my_name] {
        assert!(
            metrics.contains(&format!("rowstream_records_total{{connector=\"{n}\"}} ")),
            "{metrics}"
        );
    }
    assert_eq!(
        metrics.matches("# TYPE rowstream_records_total ").count(),
        1,
        "{metrics}"
    );
    // DELETE stops and forgets one
    let (code, _) = http(
        &addr,
        "DELETE",
        &format!("/connectors/{pg_name}"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 204);
    let (code, _) = http(
        &addr,
        "GET",
        &format!("/connectors/{pg_name}/status"),
        None,
        "",
    );
    assert_eq!(code, 404);
    // paused, then kill -9: the restarted worker keeps it paused; resumed, the row written
    // while the worker was down arrives
    let status = |n: &str| {
        let body = http(&addr, "GET", &format!("/connectors/{n}/status"), None, "").1;
        serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["connector"]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let (code, _) = http(
        &addr,
        "PUT",
        &format!("/connectors/{my_name}/pause"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 202);
    wait_for(30, "PAUSED", || async { status(my_name) == "PAUSED" }).await;
    w.assert_running();
    w.kill9();
    my.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    let w = Rowstream::start_worker(name, &worker_toml);
    wait_for(60, "the REST API back", || async {
        std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    let (_, body) = http(&addr, "GET", "/connectors", None, "");
    assert_eq!(
        body,
        format!("[\"{my_name}\"]"),
        "the deleted connector stays deleted"
    );
    wait_for(30, "still PAUSED after the restart", || async {
        status(my_name) == "PAUSED"
    })
    .await;
    let (_, body) = http(&addr, "GET", "/connectors?expand=status", None, "");
    let expanded: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        expanded[my_name]["status"]["connector"]["state"], "PAUSED",
        "{body}"
    );
    let (code, _) = http(
        &addr,
        "PUT",
        &format!("/connectors/{my_name}/resume"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 202);
    mr.until(60, "the row written while the worker was down", |x| {
        x.iter().any(|x| x.after()["id"] == serde_json::json!(2))
    });
    // a STOPPED connector has no tasks (Connect's answer), in its info, tasks and status
    let (code, _) = http(
        &addr,
        "PUT",
        &format!("/connectors/{my_name}/stop"),
        Some("s3cret"),
        "",
    );
    assert_eq!(code, 204);
    wait_for(30, "STOPPED", || async { status(my_name) == "STOPPED" }).await;
    let get_json = |path: &str| {
        let body = http(&addr, "GET", path, None, "").1;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(
        get_json(&format!("/connectors/{my_name}"))["tasks"],
        serde_json::json!([])
    );
    assert_eq!(
        get_json(&format!("/connectors/{my_name}/tasks")),
        serde_json::json!([])
    );
    assert_eq!(
        get_json(&format!("/connectors/{my_name}/status"))["tasks"],
        serde_json::json!([])
    );
    assert_eq!(w.stop(), 0);
}

/// Distributed mode: three workers of one group, six connectors (three Postgres, three
/// MariaDB) added over REST to any of them, spread by Kafka's group protocol. While rows are
/// written, the worker running the most connectors is killed with -9: its connectors move to
/// the others (the status says where) once the coordinator expires its session; then a second
/// worker leaves (SIGTERM) and the last one runs all six. Every row of every table arrives.
/// Prints the failover and handover times.
#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_connectors_and_fail_over() {
    use mysql_async::prelude::*;
    let run = run_id();
    let group = format!("rs_group-{run}");
    let addrs: Vec<String> = (0..3).map(|_| free_addr()).collect();
    let toml = |addr: &str| {
        format!(
            "[worker]\nlisten = \"{addr}\"\ngroup_id = \"{group}\"\nconfig_topic = \"{group}-configs\"\n[kafka]\nbrokers = \"{BROKER}\"\n[state]\ntopic = \"{group}-offsets\"\nhistory_topic = \"{group}-history\"\n"
        )
    };
    let mut workers: Vec<Option<Rowstream>> = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let name = format!("rs_group_w{i}");
        state_dir(&name);
        workers.push(Some(Rowstream::start_worker(&name, &toml(a))));
    }
    for a in &addrs {
        let a = a.clone();
        wait_for(60, "a worker's REST API", || {
            let a = a.clone();
            async move { std::net::TcpStream::connect(&a).is_ok() }
        })
        .await;
    }
    // six connectors, each added through a different worker
    let mut readers = Vec::new();
    let mut pgs = Vec::new();
    let mut mys = Vec::new();
    for i in 0..3 {
        let n = format!("rs_group_pg{i}");
        let db = fresh_db(&n).await;
        db.batch_execute("CREATE TABLE t(id int primary key)")
            .await
            .unwrap();
        let cfg = serde_json::json!({ "name": n, "config": {
            "source.type": "postgres",
            "source.url": format!("{PG}/{n}"),
            "source.slot": n,
            "source.publication": n,
            "kafka.topic": format!("{n}-{run}.{{schema}}.{{table}}"),
        }});
        let (code, body) = http(&addrs[i % 3], "POST", "/connectors", None, &cfg.to_string());
        assert_eq!(code, 201, "{body}");
        readers.push((n.clone(), Reader::new(&format!("{n}-{run}.public.t"))));
        pgs.push(db);
        let n = format!("rs_group_my{i}");
        let mut my = fresh_mydb(&n).await;
        my.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
            .await
            .unwrap();
        let cfg = serde_json::json!({ "name": n, "config": {
            "source.type": "mysql",
            "source.url": format!("{MY}/{n}"),
            "source.server_id": (6300 + i).to_string(),
            "kafka.topic": format!("{n}-{run}.{{db}}.{{table}}"),
        }});
        let (code, body) = http(
            &addrs[(i + 1) % 3],
            "POST",
            "/connectors",
            None,
            &cfg.to_string(),
        );
        assert_eq!(code, 201, "{body}");
        readers.push((n.clone(), Reader::new(&format!("{n}-{run}.{n}.t"))));
        mys.push(my);
    }
    let names: Vec<String> = readers.iter().map(|r| r.0.clone()).collect();
    // where each runs, as any worker reports it
    let placement = |via: &str| -> std::collections::BTreeMap<String, (String, String)> {
        let (_, body) = http(via, "GET", "/connectors?expand=status", None, "");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        names
            .iter()
            .map(|n| {
                let c = &v[n]["status"]["connector"];
                let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                (n.clone(), (s("state"), s("worker_id")))
            })
            .collect()
    };
    wait_for(
        90,
        "six connectors RUNNING, spread over the workers",
        || async {
            let p = placement(&addrs[0]);
            p.values().all(|(s, _)| s == "RUNNING")
                && p.values()
                    .map(|x| x.1.clone())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    >= 2
        },
    )
    .await;
    let before = placement(&addrs[0]);
    eprintln!("placement before: {before:?}");
    // every worker gives the same answer, whichever runs the connector (Connect's rule)
    let mut paths = vec!["/connectors?expand=info".to_string()];
    for n in &names {
        for p in ["", "/config", "/tasks"] {
            paths.push(format!("/connectors/{n}{p}"));
        }
    }
    for p in &paths {
        let answers: Vec<(u16, serde_json::Value)> = addrs
            .iter()
            .map(|a| {
                let (code, body) = http(a, "GET", p, None, "");
                (code, serde_json::from_str(&body).unwrap_or_default())
            })
            .collect();
        assert_eq!(answers[0].0, 200, "{p}: {answers:?}");
        assert!(
            answers.iter().all(|x| *x == answers[0]),
            "{p} differs between workers: {answers:?}"
        );
    }
    // any worker answers for a connector running elsewhere: its config (secrets hidden)
    let (elsewhere, _) = before.iter().find(|(_, (_, w))| *w != addrs[0]).unwrap();
    let (code, body) = http(
        &addrs[0],
        "GET",
        &format!("/connectors/{elsewhere}/config"),
        None,
        "",
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("source.type") && !body.contains("rowstream:rowstream@"),
        "{body}"
    );
    // calls that need the running connector are passed on to the worker running it: its live
    // status (rowstream's figures), its offsets, an ad-hoc snapshot
    let (code, body) = http(
        &addrs[0],
        "GET",
        &format!("/connectors/{elsewhere}/status"),
        None,
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    assert!(v["rowstream"].is_object(), "{body}");
    let (code, body) = http(
        &addrs[0],
        "GET",
        &format!("/connectors/{elsewhere}/offsets"),
        None,
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        v["offsets"][0]["partition"]["connector"], **elsewhere,
        "{body}"
    );
    let table = match elsewhere.starts_with("rs_group_pg") {
        true => "public.t".to_string(),
        false => format!("{elsewhere}.t"),
    };
    let (code, body) = http(
        &addrs[0],
        "POST",
        &format!("/connectors/{elsewhere}/snapshot"),
        None,
        &serde_json::json!({ "tables": [table] }).to_string(),
    );
    assert_eq!(code, 202, "{body}");
    // rows before, during and after the kill of the worker running the most connectors
    let insert = |k: i32| {
        let pgs = &pgs;
        async move {
            for db in pgs {
                db.execute("INSERT INTO t VALUES ($1)", &[&k])
                    .await
                    .unwrap();
            }
        }
    };
    for k in 1..=5 {
        insert(k).await;
        for my in mys.iter_mut() {
            my.exec_drop("INSERT INTO t VALUES (?)", (k,))
                .await
                .unwrap();
        }
    }
    let mut count: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, w) in before.values() {
        *count.entry(w.clone()).or_default() += 1;
    }
    let victim = count
        .iter()
        .max_by_key(|x| *x.1)
        .map(|x| x.0.clone())
        .unwrap();
    let vi = addrs.iter().position(|a| *a == victim).unwrap();
    let moved: Vec<String> = before
        .iter()
        .filter(|(_, (_, w))| *w == victim)
        .map(|(n, _)| n.clone())
        .collect();
    let t0 = std::time::Instant::now();
    workers[vi].take().unwrap().kill9();
    for k in 6..=10 {
        insert(k).await;
        for my in mys.iter_mut() {
            my.exec_drop("INSERT INTO t VALUES (?)", (k,))
                .await
                .unwrap();
        }
    }
    let survivor = &addrs[(vi + 1) % 3];
    let seen = std::sync::Mutex::new(Vec::new());
    wait_for(
        90,
        "the kill -9'd worker's connectors RUNNING elsewhere",
        || async {
            let p = placement(survivor);
            seen.lock().unwrap().push((t0.elapsed(), p.clone()));
            moved
                .iter()
                .all(|n| p[n].0 == "RUNNING" && p[n].1 != victim && !p[n].1.is_empty())
        },
    )
    .await;
    let failover = t0.elapsed();
    // once the group has dropped the dead worker (session timeout 10 s, members listed every
    // 2 s), no worker shows its connectors RUNNING there any more: UNASSIGNED until they run
    // elsewhere
    for (at, p) in seen.lock().unwrap().iter() {
        for n in &moved {
            assert!(
                at.as_secs_f64() < 15.0 || !(p[n].0 == "RUNNING" && p[n].1 == victim),
                "{n} still RUNNING on the dead worker {victim} {:.1} s after its kill: {p:?}",
                at.as_secs_f64()
            );
        }
    }
    // cooperative-sticky: the survivors' own connectors did not move
    let after = placement(survivor);
    for (n, (_, w)) in before.iter().filter(|(n, _)| !moved.contains(n)) {
        assert_eq!(
            &after[n].1, w,
            "{n} moved off a surviving worker: {after:?}"
        );
    }
    eprintln!(
        "failover after kill -9: {} connector(s) moved in {:.1} s; placement after: {:?}",
        moved.len(),
        failover.as_secs_f64(),
        placement(survivor)
    );
    // a second worker leaves cleanly: the last one runs all six
    for k in 11..=15 {
        insert(k).await;
        for my in mys.iter_mut() {
            my.exec_drop("INSERT INTO t VALUES (?)", (k,))
                .await
                .unwrap();
        }
    }
    let t1 = std::time::Instant::now();
    assert_eq!(workers[(vi + 1) % 3].take().unwrap().stop(), 0);
    let last = addrs[(vi + 2) % 3].clone();
    wait_for(
        60,
        "all six connectors RUNNING on the last worker",
        || async {
            let p = placement(&last);
            p.values().all(|(s, w)| s == "RUNNING" && *w == last)
        },
    )
    .await;
    eprintln!(
        "handover after SIGTERM: {:.1} s",
        t1.elapsed().as_secs_f64()
    );
    for (n, r) in readers.iter_mut() {
        let recs = r.until(120, &format!("every row of {n}"), |x| {
            let ids: std::collections::HashSet<i64> =
                x.iter().filter_map(|x| x.after()["id"].as_i64()).collect();
            (1..=15).all(|k| ids.contains(&k))
        });
        assert!(!recs.is_empty());
    }
    for w in workers.into_iter().flatten() {
        assert_eq!(w.stop(), 0);
    }
}
