//! Support teams and auto-assignment (docs/support.md): concurrent creations spread
//! round-robin and never put more on an agent than their capacity; what nobody can
//! take waits in the team's queue, and the `support-jobs` consumer of the table's
//! stream gives it to the first agent who frees up or comes online; the team routes
//! are admins', read by staff, refused to customers, and tenant-isolated.

use chat_testkit::token;
use devserver::TestApp;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn admin() -> String {
    token("boss", "acme", "admin")
}

fn agent(id: &str) -> String {
    token(id, "acme", "agent")
}

/// A team of `agents`, each with `capacity` and online.
async fn team(app: &TestApp, agents: &[&str], capacity: u32) -> String {
    let made = app
        .expect(
            201,
            "POST /teams",
            &[],
            &admin(),
            json!({"name": "Billing"}),
        )
        .await;
    let team = made["team_id"].as_str().unwrap().to_owned();
    for a in agents {
        app.expect(
            200,
            "PUT /teams/{team_id}/agents/{user_id}",
            &[("team_id", &team), ("user_id", a)],
            &admin(),
            json!({"capacity": capacity}),
        )
        .await;
        set_availability(app, a, "online").await;
    }
    team
}

async fn set_availability(app: &TestApp, who: &str, availability: &str) -> Value {
    app.expect(
        200,
        "PUT /agents/me/availability",
        &[],
        &agent(who),
        json!({ "availability": availability }),
    )
    .await
}

/// `n` conversations started at once (10 in flight) by different customers, routed
/// to `team`: their creation answers. A `503` with `Retry-After` (a DynamoDB Local
/// slowed by the whole suite can time out) is sent again after it, as a client is
/// told to; the workload checks below would see a creation that was written anyway.
async fn burst(app: &TestApp, team: &str, n: usize) -> Vec<Value> {
    futures_util::stream::iter(0..n)
        .map(|i| async move {
            let customer = token(&format!("c-{i}"), "acme", "customer");
            let body = json!({"title": format!("Help {i}"), "team_id": team});
            for _ in 0..3 {
                let (status, answer) = app
                    .send(
                        "POST /chat/conversations",
                        &[],
                        &customer,
                        Some(body.clone()),
                        &[],
                    )
                    .await;
                if status == 503 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                assert_eq!(status, 201, "{answer}");
                return answer["data"].clone();
            }
            panic!("still 503 after three tries");
        })
        .buffer_unordered(10)
        .collect()
        .await
}

/// Conversations per assignee among the creations' answers ("" for queued ones).
fn per_assignee(made: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in made {
        let who = m["conversation"]["assignee_id"].as_str().unwrap_or("");
        *counts.entry(who.to_owned()).or_insert(0) += 1;
    }
    counts
}

async fn workload(app: &TestApp, who: &str) -> Value {
    app.expect_get("GET /agents/me", &[], &agent(who)).await
}

#[tokio::test]
async fn two_hundred_concurrent_creations_spread_round_robin_over_five_agents_within_capacity() {
    let app = TestApp::new().await;
    let agents = ["a-1", "a-2", "a-3", "a-4", "a-5"];
    let team = team(&app, &agents, 45).await;
    // One after another: strictly in turn.
    let mut order = Vec::new();
    for i in 0..10 {
        let customer = token(&format!("s-{i}"), "acme", "customer");
        let made = app
            .expect(
                201,
                "POST /chat/conversations",
                &[],
                &customer,
                json!({"title": "Help", "team_id": team}),
            )
            .await;
        order.push(made["routing"]["assignee_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(order, [agents, agents].concat());
    // 190 more, 10 at a time: never past capacity (45 each, 225 in all), and
    // spread: claims that race for one agent choose again among the next in turn.
    let made = burst(&app, &team, 190).await;
    let mut counts = per_assignee(&made);
    assert!(!counts.contains_key(""), "all fit: {counts:?}");
    for a in agents {
        *counts.entry(a.to_owned()).or_insert(0) += 2;
        let n = counts[a];
        assert!((30..=45).contains(&n), "{a} got {n}: {counts:?}");
        assert_eq!(workload(&app, a).await["open_conversations"], n as u64);
    }
    assert_eq!(counts.values().sum::<usize>(), 200);
    for m in &made {
        assert_eq!(m["routing"]["outcome"], "assigned");
        assert_eq!(
            m["routing"]["assignee_id"],
            m["conversation"]["assignee_id"]
        );
    }
    // The agent is a member: it is in their inbox, assigned to them.
    let (_, inbox) = app
        .send(
            "GET /chat/conversations",
            &[],
            &agent("a-3"),
            None,
            &[("assignee_id", "me"), ("limit", "100")],
        )
        .await;
    assert_eq!(
        inbox["data"]["conversations"].as_array().unwrap().len(),
        counts["a-3"]
    );
}

#[tokio::test]
async fn a_burst_past_capacity_is_queued_and_agents_who_free_up_take_the_oldest_first() {
    let app = TestApp::new().await;
    devserver::support_jobs::serve_support_jobs(&app.table.runtime).await;
    let team = team(&app, &["a-1", "a-2", "a-3"], 2).await;
    set_availability(&app, "a-3", "busy").await;
    // Busy a-3 takes none: 4 places for 10.
    let made = burst(&app, &team, 10).await;
    let counts = per_assignee(&made);
    assert_eq!(counts.get("a-1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("a-2"), Some(&2), "{counts:?}");
    assert_eq!(counts.get(""), Some(&6), "{counts:?}");
    assert!(!counts.contains_key("a-3"));
    let queue = queued(&app, &team).await;
    assert_eq!(queue.len(), 6);
    let times: Vec<&str> = queue
        .iter()
        .map(|c| c["queued_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {times:?}"
    );

    // a-1 resolves one: the oldest queued conversation is theirs, by the stream.
    let theirs = made
        .iter()
        .find(|m| m["conversation"]["assignee_id"] == "a-1")
        .unwrap()["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", &theirs)],
        &agent("a-1"),
        json!({"status": "resolved"}),
    )
    .await;
    let oldest = queue[0]["conversation_id"].as_str().unwrap().to_owned();
    let taken = until_assigned(&app, &oldest).await;
    assert_eq!(taken["assignee_id"], "a-1");
    assert!(taken["queued_at"].is_null());
    assert_eq!(queued(&app, &team).await.len(), 5);
    assert_eq!(workload(&app, "a-1").await["open_conversations"], 2);
    // Its customer's feed says who took it, and the agent is in it.
    let feed = app.events(&oldest, &agent("a-1")).await;
    let kinds: Vec<&str> = feed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["member.added", "room.updated"], "{feed:?}");

    // a-3 comes online with room for 2: the next two are theirs.
    set_availability(&app, "a-3", "online").await;
    for q in &queue[1..3] {
        let id = q["conversation_id"].as_str().unwrap();
        assert_eq!(until_assigned(&app, id).await["assignee_id"], "a-3");
    }
    assert_eq!(queued(&app, &team).await.len(), 3);
    // A queued conversation given by hand leaves the queue; one closed while it
    // waits is not assigned when an agent frees up.
    let by_hand = queue[3]["conversation_id"].as_str().unwrap();
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", by_hand)],
        &agent("a-2"),
        json!({"assignee_id": "a-9"}),
    )
    .await;
    let closed = queue[4]["conversation_id"].as_str().unwrap();
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", closed)],
        &agent("a-2"),
        json!({"status": "closed"}),
    )
    .await;
    assert_eq!(queued(&app, &team).await.len(), 1);
    app.expect(
        200,
        "PUT /teams/{team_id}/agents/{user_id}",
        &[("team_id", &team), ("user_id", "a-2")],
        &admin(),
        json!({"capacity": 5}),
    )
    .await;
    let last = queue[5]["conversation_id"].as_str().unwrap();
    assert_eq!(until_assigned(&app, last).await["assignee_id"], "a-2");
    let (_, closed_now) = app
        .send(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", closed)],
            &agent("a-2"),
            None,
            &[],
        )
        .await;
    assert!(closed_now["data"]["assignee_id"].is_null(), "{closed_now}");
    assert!(queued(&app, &team).await.is_empty());
    // The customer of a-1's resolved conversation replies: it is theirs again, and
    // counts against their capacity again.
    let owner = made
        .iter()
        .find(|m| m["conversation_id"] == theirs.as_str())
        .unwrap()["conversation"]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &theirs)],
        &token(&owner, "acme", "customer"),
        json!({"content": "It happened again"}),
    )
    .await;
    assert_eq!(workload(&app, "a-1").await["open_conversations"], 3);
}

async fn queued(app: &TestApp, team: &str) -> Vec<Value> {
    let data = app
        .expect_get(
            "GET /teams/{team_id}/queue",
            &[("team_id", team)],
            &agent("a-1"),
        )
        .await;
    data["conversations"].as_array().unwrap().clone()
}

/// The conversation once it has an assignee (bounded: 20 s).
async fn until_assigned(app: &TestApp, conversation: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, got) = app
            .send(
                "GET /chat/conversations/{conversation_id}",
                &[("conversation_id", conversation)],
                &agent("a-1"),
                None,
                &[],
            )
            .await;
        if !got["data"]["assignee_id"].is_null() {
            return got["data"].clone();
        }
        assert!(Instant::now() < deadline, "never assigned: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn teams_are_admins_to_change_staffs_to_read_and_each_tenants_own() {
    let app = TestApp::new().await;
    let team = team(&app, &["a-1"], 3).await;
    let before = app.table.items().await.len();
    let customer = token("c-1", "acme", "customer");
    // Customers: refused before their body is read, also a bad one.
    for (key, body) in [
        ("POST /teams", json!({"name": 5})),
        (
            "PUT /agents/me/availability",
            json!({"availability": "nope"}),
        ),
    ] {
        let (status, answer) = app.send(key, &[], &customer, Some(body), &[]).await;
        assert_eq!(status, 403, "{key}: {answer}");
    }
    // Agents read teams but do not change them.
    let (status, _) = app
        .send(
            "PATCH /teams/{team_id}",
            &[("team_id", &team)],
            &agent("a-1"),
            Some(json!({"name": "Mine"})),
            &[],
        )
        .await;
    assert_eq!(status, 403);
    // Every other spelling of a refused value: 422, nothing written.
    for (body, field) in [
        (json!({"name": "  "}), "name"),
        (json!({"name": "x".repeat(81)}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": "B", "color": "red"}), "color"),
    ] {
        let (status, answer) = app
            .send("POST /teams", &[], &admin(), Some(body), &[])
            .await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    for capacity in [
        json!(0),
        json!("3"),
        json!(2.5),
        json!(201),
        json!(-1),
        json!(null),
    ] {
        let (status, answer) = app
            .send(
                "PUT /teams/{team_id}/agents/{user_id}",
                &[("team_id", &team), ("user_id", "a-2")],
                &admin(),
                Some(json!({ "capacity": capacity })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{capacity}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], "capacity", "{answer}");
    }
    for spelling in ["Online", "ONLINE", "away", "", "online "] {
        let (status, _) = app
            .send(
                "PUT /agents/me/availability",
                &[],
                &agent("a-1"),
                Some(json!({ "availability": spelling })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{spelling:?}");
    }
    // A conversation routed to no such team, or another tenant's: 422, nothing.
    let globex_admin = token("boss", "globex", "admin");
    let theirs = app
        .expect(
            201,
            "POST /teams",
            &[],
            &globex_admin,
            json!({"name": "Theirs"}),
        )
        .await["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let after_theirs = app.table.items().await.len();
    for bad in [theirs.as_str(), "01HZX3K7Q8R9S0T1V2W3XTEAMS", "billing", ""] {
        let (status, answer) = app
            .send(
                "POST /chat/conversations",
                &[],
                &customer,
                Some(json!({"title": "Help", "team_id": bad})),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], "team_id");
    }
    assert_eq!(
        app.table.items().await.len(),
        after_theirs,
        "nothing written"
    );
    assert_eq!(
        after_theirs,
        before + 3,
        "only globex's team, its count and its audit entry"
    );
    // Another tenant's team is not found on any of its routes.
    for (key, body) in [
        ("GET /teams/{team_id}", None),
        ("GET /teams/{team_id}/queue", None),
        ("PATCH /teams/{team_id}", Some(json!({"name": "Ours"}))),
        ("DELETE /teams/{team_id}", None),
    ] {
        let (status, _) = app
            .send(key, &[("team_id", &theirs)], &admin(), body, &[])
            .await;
        assert_eq!(status, 404, "{key}");
    }
    let (status, _) = app
        .send(
            "PUT /teams/{team_id}/agents/{user_id}",
            &[("team_id", &theirs), ("user_id", "a-1")],
            &admin(),
            Some(json!({"capacity": 3})),
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let listed = app.expect_get("GET /teams", &[], &agent("a-1")).await;
    let names: Vec<&str> = listed["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Billing"]);
    // An agent out of the team is not given its conversations; a deleted team
    // routes nothing.
    app.expect_get("GET /teams/{team_id}", &[("team_id", &team)], &agent("a-1"))
        .await;
    let (status, _) = app
        .send(
            "DELETE /teams/{team_id}/agents/{user_id}",
            &[("team_id", &team), ("user_id", "a-1")],
            &admin(),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let made = app
        .expect(
            201,
            "POST /chat/conversations",
            &[],
            &customer,
            json!({"title": "Help", "team_id": team}),
        )
        .await;
    assert_eq!(made["routing"]["outcome"], "queued");
    assert_eq!(workload(&app, "a-1").await["team_ids"], json!([]));
    // Resolved while it waits, it leaves the queue; the customer's reply reopens it
    // with nobody on it, and it waits again.
    let waiting = made["conversation_id"].as_str().unwrap();
    app.expect(
        200,
        "PUT /chat/conversations/{conversation_id}",
        &[("conversation_id", waiting)],
        &agent("a-1"),
        json!({"status": "resolved"}),
    )
    .await;
    assert!(queued(&app, &team).await.is_empty());
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", waiting)],
        &customer,
        json!({"content": "Still broken"}),
    )
    .await;
    let again = queued(&app, &team).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["status"], "open");
    // The stream's consumer from here: the deletion's record releases the queue.
    devserver::support_jobs::serve_support_jobs(&app.table.runtime).await;
    app.expect(
        200,
        "DELETE /teams/{team_id}",
        &[("team_id", &team)],
        &admin(),
        json!(null),
    )
    .await;
    let (status, answer) = app
        .send(
            "POST /chat/conversations",
            &[],
            &customer,
            Some(json!({"title": "Help", "team_id": team})),
            &[],
        )
        .await;
    assert_eq!(status, 422, "{answer}");

    // What waited in the deleted team's queue goes back to the desk: out of the
    // queue and the team, unassigned, told to staff only (bounded: 20 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    let released = loop {
        let got = app
            .expect_get(
                "GET /chat/conversations/{conversation_id}",
                &[("conversation_id", waiting)],
                &agent("a-1"),
            )
            .await;
        if got["team_id"].is_null() {
            break got;
        }
        assert!(Instant::now() < deadline, "never released: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(released["queued_at"].is_null(), "{released}");
    assert!(released["assignee_id"].is_null(), "{released}");
    let is_release = |e: &Value| {
        e["type"] == "room.updated"
            && e["data"].get("team_id") == Some(&Value::Null)
            && e["data"].get("queued_at") == Some(&Value::Null)
    };
    let desk = app.events(waiting, &agent("a-1")).await;
    assert!(desk.iter().any(is_release), "{desk:?}");
    let theirs = app.events(waiting, &customer).await;
    assert!(!theirs.iter().any(is_release), "{theirs:?}");
}

#[tokio::test]
async fn a_rule_on_the_first_message_routes_a_conversation_to_its_team_and_an_agent_takes_it() {
    let app = TestApp::new().await;
    devserver::support_jobs::serve_support_jobs(&app.table.runtime).await;
    let billing = team(&app, &["a-1"], 3).await;
    let returns = team(&app, &["a-2"], 3).await;
    app.expect(
        200,
        "PATCH /teams/{team_id}",
        &[("team_id", &billing)],
        &admin(),
        json!({"sla": {"first_response_minutes": 30}}),
    )
    .await;
    let saved = app
        .expect(
            200,
            "PUT /routing-rules",
            &[],
            &admin(),
            json!({"rules": [
                {"name": "Billing", "keywords": ["Refund", "money back"], "team_id": billing},
                {"name": "Returns", "keywords": ["return", "refund"], "team_id": returns},
            ]}),
        )
        .await;
    assert_eq!(
        saved["rules"][0]["keywords"],
        json!(["refund", "money back"])
    );
    let listed = app
        .expect_get("GET /routing-rules", &[], &agent("a-2"))
        .await;
    assert_eq!(listed["rules"], saved["rules"]);

    // Started with no team and nobody on it; the first message decides.
    let start = |customer: &'static str, first: &'static str| {
        let app = &app;
        async move {
            let tok = token(customer, "acme", "customer");
            let id = app
                .expect(
                    201,
                    "POST /chat/conversations",
                    &[],
                    &tok,
                    json!({"title": "Hi"}),
                )
                .await["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned();
            app.expect(
                201,
                "POST /chat/conversations/{conversation_id}/messages",
                &[("conversation_id", &id)],
                &tok,
                json!({ "content": first }),
            )
            .await;
            id
        }
    };
    let refund = start("c-1", "I want my MONEY back for order 7").await;
    let ret = start("c-2", "How do I return a kettle?").await;
    let neither = start("c-3", "Hello there").await;
    let routed = until_assigned(&app, &refund).await;
    assert_eq!(
        (routed["team_id"].as_str(), routed["assignee_id"].as_str()),
        (Some(billing.as_str()), Some("a-1"))
    );
    assert!(
        routed["sla"]["first_response_due_at"].is_string(),
        "{routed}"
    );
    let routed = until_assigned(&app, &ret).await;
    assert_eq!(routed["assignee_id"], "a-2");
    // The desk's feed says which rule; the customer's shows only the agent joining.
    let feed = app.events(&refund, &agent("a-1")).await;
    assert!(
        feed.iter()
            .any(|e| e["type"] == "room.updated" && e["data"]["routing_rule"] == "Billing"),
        "{feed:?}"
    );
    let theirs = app.events(&refund, &token("c-1", "acme", "customer")).await;
    assert!(
        theirs.iter().all(|e| e["data"]["routing_rule"].is_null()),
        "{theirs:?}"
    );
    // No rule matched: it stays where it was; a second message never routes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, left) = app
        .send(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &neither)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert!(left["data"]["team_id"].is_null(), "{left}");
    app.expect(
        201,
        "POST /chat/conversations/{conversation_id}/messages",
        &[("conversation_id", &neither)],
        &token("c-3", "acme", "customer"),
        json!({"content": "a refund please"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, left) = app
        .send(
            "GET /chat/conversations/{conversation_id}",
            &[("conversation_id", &neither)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert!(left["data"]["team_id"].is_null(), "{left}");

    // Bad rules: 422 naming the place, nothing written; customers and agents may not
    // set them (403 before the body is read); another tenant's team is no team.
    let other = token("boss", "globex", "admin");
    let other_team = app
        .expect(201, "POST /teams", &[], &other, json!({"name": "Theirs"}))
        .await["team_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before_ours = app.table.items().await;
    for (body, field) in [
        (
            json!({"rules": [{"name": "x", "keywords": [], "team_id": billing}]}),
            "rules[0].keywords",
        ),
        (
            json!({"rules": [{"name": "x", "keywords": ["!?"], "team_id": billing}]}),
            "rules[0].keywords[0]",
        ),
        (
            json!({"rules": [{"name": " ", "keywords": ["a"], "team_id": billing}]}),
            "rules[0].name",
        ),
        (
            json!({"rules": [{"name": "x", "keywords": ["a"], "team_id": other_team}]}),
            "rules[0].team_id",
        ),
        (
            json!({"rules": [{"name": "x", "keywords": ["a"], "team_id": "billing"}]}),
            "rules[0].team_id",
        ),
        (
            json!({"rules": [{"name": "x", "keywords": ["a"], "team_id": billing, "labels": []}]}),
            "rules[0].labels",
        ),
        (
            json!({"rules": (0..51).map(|_| json!({"name": "x", "keywords": ["a"], "team_id": billing})).collect::<Vec<_>>()}),
            "rules",
        ),
    ] {
        let (status, answer) = app
            .send("PUT /routing-rules", &[], &admin(), Some(body.clone()), &[])
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer}");
    }
    for who in [agent("a-1"), token("c-1", "acme", "customer")] {
        let (status, _) = app
            .send(
                "PUT /routing-rules",
                &[],
                &who,
                Some(json!({"rules": "not even a list"})),
                &[],
            )
            .await;
        assert_eq!(status, 403);
    }
    let (status, _) = app
        .send(
            "GET /routing-rules",
            &[],
            &token("c-1", "acme", "customer"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(app.table.items().await, before_ours, "nothing was written");
    // Another tenant has no rules of ours.
    let theirs = app.expect_get("GET /routing-rules", &[], &other).await;
    assert_eq!(theirs["rules"], json!([]));
}

#[tokio::test]
async fn an_online_agent_without_a_connection_for_the_stacks_minutes_goes_offline_and_nobody_else()
{
    use chat_core::auth::Principal;
    use chat_core::ids::{OrgId, Role, UserId};
    let app = TestApp::new().await;
    let store = &app.table.runtime.store;
    team(&app, &["a-1", "a-2", "a-3"], 3).await;
    set_availability(&app, "a-3", "busy").await;
    let who = |id: &str, role: Role| Principal {
        user: UserId::parse(id).unwrap(),
        org: OrgId::parse("acme").unwrap(),
        role,
    };
    let later = |minutes: i64| {
        chat_core::time::format(chat_core::time::now() + time::Duration::minutes(minutes))
    };
    // a-1 closes one of two tabs, then the other: away from the last.
    store
        .open_connection("k-1", &who("a-1", Role::Agent))
        .await
        .unwrap();
    store
        .open_connection("k-2", &who("a-1", Role::Agent))
        .await
        .unwrap();
    store.close_connection("k-1").await.unwrap();
    assert_eq!(
        store.away_sweep(&later(11), 10).await.unwrap(),
        0,
        "a tab is still open"
    );
    store.close_connection("k-2").await.unwrap();
    // a-2 goes and comes back; busy a-3 and a customer go.
    store
        .open_connection("k-3", &who("a-2", Role::Agent))
        .await
        .unwrap();
    store.close_connection("k-3").await.unwrap();
    store
        .open_connection("k-4", &who("a-2", Role::Agent))
        .await
        .unwrap();
    store
        .open_connection("k-5", &who("a-3", Role::Agent))
        .await
        .unwrap();
    store.close_connection("k-5").await.unwrap();
    store
        .open_connection("k-6", &who("c-1", Role::Customer))
        .await
        .unwrap();
    store.close_connection("k-6").await.unwrap();

    // Not before the stack's minutes; then a-1 only, once.
    assert_eq!(store.away_sweep(&later(9), 10).await.unwrap(), 0);
    let at = later(11);
    let sweeps = futures_util::future::join_all((0..3).map(|_| store.away_sweep(&at, 10))).await;
    let offline: usize = sweeps.into_iter().map(Result::unwrap).sum();
    assert_eq!(offline, 1);
    assert_eq!(workload(&app, "a-1").await["availability"], "offline");
    assert_eq!(workload(&app, "a-2").await["availability"], "online");
    assert_eq!(workload(&app, "a-3").await["availability"], "busy");
    // Away, then busy by hand: off the away list at once (the sweep has nobody left
    // to look at for them).
    store
        .open_connection("k-7", &who("a-2", Role::Agent))
        .await
        .unwrap();
    store.close_connection("k-4").await.unwrap();
    store.close_connection("k-7").await.unwrap();
    let listed = |items: &[chat_core::item::Item]| {
        items
            .iter()
            .filter(|i| format!("{:?}", i.get("GSI2PK")).contains("AWAY#"))
            .count()
    };
    assert_eq!(listed(&app.table.items().await), 1, "a-2 is listed away");
    set_availability(&app, "a-2", "busy").await;
    assert_eq!(
        listed(&app.table.items().await),
        0,
        "busy by hand: off the list"
    );
    set_availability(&app, "a-2", "online").await;
    // Online again, it is theirs to keep while connected.
    set_availability(&app, "a-1", "online").await;
    assert_eq!(store.away_sweep(&later(30), 10).await.unwrap(), 0);
    assert_eq!(workload(&app, "a-1").await["availability"], "online");
}

/// Deletes `team`; a creation routed to it is then `422` and writes nothing.
async fn deleted_then_refused(app: &TestApp, team: &str, customer: &str) {
    let (status, _) = app
        .send(
            "DELETE /teams/{team_id}",
            &[("team_id", team)],
            &admin(),
            None,
            &[],
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    let before = app.table.items().await;
    let body = json!({"title": "Help", "team_id": team});
    let customer = token(customer, "acme", "customer");
    let (status, gone) = app
        .send("POST /chat/conversations", &[], &customer, Some(body), &[])
        .await;
    assert_eq!(status, 422, "{gone}");
    assert_eq!(gone["error"]["details"]["field"], "team_id", "{gone}");
    assert_eq!(app.table.items().await, before, "nothing was written");
}

#[tokio::test]
async fn a_team_changed_since_an_instance_read_it_is_read_again_before_anyone_is_assigned() {
    let app = TestApp::new().await;
    let team = team(&app, &["a-1"], 5).await;
    let create_in = |team: &str, customer: &'static str| {
        let body = json!({"title": "Help", "team_id": team});
        let app = &app;
        async move {
            let customer = token(customer, "acme", "customer");
            app.send("POST /chat/conversations", &[], &customer, Some(body), &[])
                .await
        }
    };
    let create = |customer: &'static str| create_in(&team, customer);
    // The first creation reads the team (and this instance keeps it).
    let (status, first) = create("c-1").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["data"]["conversation"]["assignee_id"], "a-1");
    // The admin moves the team to a-2 behind the instance's back (the cache is not
    // told): the creation's read of the team sees it (a-1, whose turn it is, left).
    app.expect(
        200,
        "PUT /teams/{team_id}/agents/{user_id}",
        &[("team_id", &team), ("user_id", "a-2")],
        &admin(),
        json!({"capacity": 5}),
    )
    .await;
    set_availability(&app, "a-2", "online").await;
    // Who joined is in turn at once (never assigned: first), cache or not.
    let (status, joined) = create("c-9").await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["data"]["conversation"]["assignee_id"], "a-2");
    let (status, _) = app
        .send(
            "DELETE /teams/{team_id}/agents/{user_id}",
            &[("team_id", &team), ("user_id", "a-1")],
            &admin(),
            None,
            &[],
        )
        .await;
    assert!(status == 200 || status == 204, "{status}");
    let (status, second) = create("c-2").await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        second["data"]["conversation"]["assignee_id"], "a-2",
        "not the agent who left: {second}"
    );
    assert_eq!(workload(&app, "a-1").await["open_conversations"], 1);
    // A team deleted meanwhile routes nothing, and nothing is written.
    deleted_then_refused(&app, &team, "c-3").await;

    // A queued creation (nobody online) checks the team itself: one deleted behind
    // the cache queues nothing.
    let quiet = self::team(&app, &["a-3"], 5).await;
    set_availability(&app, "a-3", "offline").await;
    let (status, queued) = create_in(&quiet, "c-4").await;
    assert_eq!(status, 201, "{queued}");
    assert!(
        queued["data"]["conversation"]["assignee_id"].is_null(),
        "{queued}"
    );
    deleted_then_refused(&app, &quiet, "c-5").await;
}

#[tokio::test]
async fn a_customer_who_writes_twice_before_the_stream_comes_is_routed_by_the_first_message() {
    use chat_core::ids::{OrgId, RoomId};
    use chat_core::store::routing::RuleRouting;
    let app = TestApp::new().await;
    let billing = team(&app, &["a-1"], 3).await;
    app.expect(
        200,
        "PUT /routing-rules",
        &[],
        &admin(),
        json!({"rules": [{"name": "Billing", "keywords": ["refund"], "team_id": billing}]}),
    )
    .await;
    let store = &app.table.runtime.store;
    let org = OrgId::parse("acme").unwrap();
    // A conversation and its messages, in order (before any stream record is read).
    let start = |customer: &'static str, by: [(String, &'static str); 2]| {
        let app = &app;
        async move {
            let id = app
                .expect(
                    201,
                    "POST /chat/conversations",
                    &[],
                    &token(customer, "acme", "customer"),
                    json!({"title": "Hi"}),
                )
                .await["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned();
            for (who, content) in by {
                app.expect(
                    201,
                    "POST /chat/conversations/{conversation_id}/messages",
                    &[("conversation_id", &id)],
                    &who,
                    json!({ "content": content }),
                )
                .await;
            }
            RoomId::parse(&id).unwrap()
        }
    };
    let c1 = token("c-1", "acme", "customer");
    let twice = start("c-1", [(c1.clone(), "I need a refund"), (c1, "hello?")]).await;
    assert_eq!(
        store.route_by_rules(&org, &twice).await.unwrap(),
        RuleRouting::Queued {
            team: chat_core::ids::TeamId::parse(&billing).unwrap(),
            rule: "Billing".into()
        }
    );
    // Routed once: the stream's later record of it changes nothing.
    assert_eq!(
        store.route_by_rules(&org, &twice).await.unwrap(),
        RuleRouting::Left
    );
    // The second message alone never routes.
    let c2 = token("c-2", "acme", "customer");
    let later = start("c-2", [(c2.clone(), "hello"), (c2, "a refund please")]).await;
    assert_eq!(
        store.route_by_rules(&org, &later).await.unwrap(),
        RuleRouting::Left
    );
}
