//! The permission matrix, generated from the permission table (`chat_core::policy`)
//! over every route of template.yaml: each route is classified by the action it
//! performs (or as needing nothing beyond seeing its room), and each action is called
//! by callers of every role standing in every relation to a real room. What each one
//! gets is what the table says: a room they may not see is `404` (the answer a missing
//! id gets), a right they lack is `403`, a right they have succeeds. A route added to
//! the template fails this test until it is classified here.

use chat_core::ids::Role;
use chat_core::policy::{self, Action, Relation};
use chat_testkit::token;
use devserver::TestApp;
use serde_json::{Value, json};

/// Routes that take no action beyond reading or writing what the caller may see (or
/// their own things), checked by the object and input matrices.
const VISIBILITY_ONLY: &[&str] = &[
    "POST /realtime/tickets",
    "POST /rooms/{room_id}/uploads",
    "GET /rooms/{room_id}/attachments/{upload_id}",
    "GET /chat/conversations/{conversation_id}/attachments/{upload_id}",
    "POST /chat/conversations/{conversation_id}/uploads",
    "POST /rooms",
    "GET /rooms",
    "GET /rooms/{room_id}",
    "GET /rooms/{room_id}/members",
    "GET /products",
    "PUT /profiles/me",
    "GET /profiles/{user_id}",
    "GET /chat/conversations",
    "POST /chat/conversations",
    "GET /chat/conversations/{conversation_id}",
    "DELETE /chat/conversations/{conversation_id}",
    "GET /rooms/{room_id}/messages",
    "POST /rooms/{room_id}/messages",
    "GET /chat/conversations/{conversation_id}/messages",
    "GET /rooms/{room_id}/events",
    "GET /chat/conversations/{conversation_id}/events",
    "POST /chat/conversations/{conversation_id}/ai-response",
    "GET /chat/search",
    "GET /chat/analytics/dashboard",
    // The caller's own preferences and subscriptions.
    "GET /me/notification-settings",
    "PUT /me/notification-settings",
    "POST /me/push-subscriptions",
    "DELETE /me/push-subscriptions/{subscription_id}",
    "POST /me/devices",
    "DELETE /me/devices/{device_id}",
    // The caller's own tenant's name.
    "GET /org/settings",
    // A team's name and hours: everyone of the tenant (the widget shows them).
    "GET /teams/{team_id}/hours",
    // The caller's own data.
    "POST /me/export",
    "GET /me/exports/{export_id}",
    // Public: a signed link is the authority, not a token (tests/notifications.rs).
    "GET /email/unsubscribe",
    "POST /email/unsubscribe",
    "GET /email/rating",
    "POST /email/rating",
];

#[derive(Clone, Copy, PartialEq)]
enum Target {
    /// u-100's team room with u-200; u-100's message in it.
    Group,
    /// u-100's support conversation with agent a-1; u-100's message in it.
    Conversation,
    /// Nothing in a room.
    Tenant,
}

/// One route performing one action: its key, the room it acts on, its body and
/// query, and whether a success destroys what the next caller would act on.
struct Case {
    key: &'static str,
    target: Target,
    body: Option<Value>,
    query: &'static [(&'static str, &'static str)],
    action: Action,
    destructive: bool,
}

fn cases() -> Vec<Case> {
    let case = |key, target, body: Option<Value>, action, destructive| Case {
        key,
        target,
        body,
        query: &[],
        action,
        destructive,
    };
    use Target::*;
    vec![
        case(
            "PATCH /rooms/{room_id}",
            Group,
            Some(json!({"name": "Renamed"})),
            Action::ChangeRoom,
            false,
        ),
        case(
            "PATCH /rooms/{room_id}",
            Conversation,
            Some(json!({"status": "pending"})),
            Action::ChangeRoom,
            false,
        ),
        case(
            "PUT /chat/conversations/{conversation_id}",
            Conversation,
            Some(json!({"title": "Renamed"})),
            Action::ChangeRoom,
            false,
        ),
        case(
            "PUT /chat/conversations/{conversation_id}",
            Conversation,
            Some(json!({"assignee_id": "a-1"})),
            Action::Assign,
            false,
        ),
        case(
            "POST /rooms/{room_id}/members",
            Group,
            Some(json!({"user_id": "u-400"})),
            Action::AddMember,
            true,
        ),
        case(
            "DELETE /rooms/{room_id}/members/{user_id}",
            Group,
            None,
            Action::RemoveMember,
            true,
        ),
        case(
            "DELETE /rooms/{room_id}",
            Group,
            None,
            Action::DeleteRoom,
            true,
        ),
        case(
            "DELETE /rooms/{room_id}",
            Conversation,
            None,
            Action::DeleteRoom,
            true,
        ),
        case(
            "POST /chat/conversations/{conversation_id}/messages",
            Conversation,
            Some(json!({"content": "internal", "message_type": "note"})),
            Action::PostNote,
            false,
        ),
        case(
            "PATCH /rooms/{room_id}/messages/{message_id}",
            Group,
            Some(json!({"content": "edited"})),
            Action::EditMessage,
            false,
        ),
        case(
            "PATCH /chat/conversations/{conversation_id}/messages/{message_id}",
            Conversation,
            Some(json!({"content": "edited"})),
            Action::EditMessage,
            false,
        ),
        case(
            "DELETE /rooms/{room_id}/messages/{message_id}",
            Group,
            None,
            Action::DeleteMessage,
            true,
        ),
        case(
            "DELETE /chat/conversations/{conversation_id}/messages/{message_id}",
            Conversation,
            None,
            Action::DeleteMessage,
            true,
        ),
        case(
            "POST /rooms/{room_id}/read",
            Group,
            Some(json!({})),
            Action::OwnView,
            false,
        ),
        case(
            "POST /chat/conversations/{conversation_id}/read",
            Conversation,
            Some(json!({})),
            Action::OwnView,
            false,
        ),
        case(
            "PUT /rooms/{room_id}/notifications",
            Conversation,
            Some(json!({"muted_until": null})),
            Action::OwnView,
            false,
        ),
        case(
            "POST /products",
            Tenant,
            Some(json!({"product_id": "kit", "name": "Kit"})),
            Action::ChangeCatalogue,
            true,
        ),
        case(
            "GET /chat/analytics/global",
            Tenant,
            None,
            Action::ReadGlobalAnalytics,
            false,
        ),
        Case {
            query: &[("member", "u-100")],
            ..case("GET /rooms", Tenant, None, Action::ListOthersRooms, false)
        },
        case(
            "POST /webhooks",
            Tenant,
            Some(json!({"url": "https://erp.example.com/in", "event_types": ["room.updated"]})),
            Action::ManageWebhooks,
            false,
        ),
        case("GET /webhooks", Tenant, None, Action::ManageWebhooks, false),
        case(
            "GET /admin/audit",
            Tenant,
            None,
            Action::ManageDataProtection,
            false,
        ),
        case(
            "POST /admin/users/{user_id}/export",
            Tenant,
            None,
            Action::ManageDataProtection,
            true,
        ),
        case(
            "GET /admin/users/{user_id}/exports/{export_id}",
            Tenant,
            None,
            Action::ManageDataProtection,
            false,
        ),
        case(
            "POST /admin/users/{user_id}/erase",
            Tenant,
            None,
            Action::ManageDataProtection,
            true,
        ),
        case(
            "GET /admin/users/{user_id}/erasures/{erasure_id}",
            Tenant,
            None,
            Action::ManageDataProtection,
            false,
        ),
        case(
            "GET /admin/settings/retention",
            Tenant,
            None,
            Action::ManageDataProtection,
            false,
        ),
        case(
            "PUT /admin/settings/retention",
            Tenant,
            Some(json!({"messages_days": 365})),
            Action::ManageDataProtection,
            false,
        ),
        case("GET /teams", Tenant, None, Action::WorkSupportDesk, false),
        case(
            "POST /teams",
            Tenant,
            Some(json!({"name": "Refunds"})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "GET /teams/{team_id}",
            Tenant,
            None,
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "PATCH /teams/{team_id}",
            Tenant,
            Some(json!({"name": "Billing and refunds"})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "DELETE /teams/{team_id}",
            Tenant,
            None,
            Action::ManageSupportDesk,
            true,
        ),
        case(
            "PUT /teams/{team_id}/agents/{user_id}",
            Tenant,
            Some(json!({"capacity": 3})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "DELETE /teams/{team_id}/agents/{user_id}",
            Tenant,
            None,
            Action::ManageSupportDesk,
            true,
        ),
        case(
            "GET /teams/{team_id}/queue",
            Tenant,
            None,
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "GET /agents/me",
            Tenant,
            None,
            Action::WorkSupportDesk,
            false,
        ),
        case("GET /labels", Tenant, None, Action::WorkSupportDesk, false),
        case(
            "GET /routing-rules",
            Tenant,
            None,
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "PUT /routing-rules",
            Tenant,
            Some(json!({"rules": []})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "POST /chat/conversations/{conversation_id}/rating",
            Conversation,
            Some(json!({"rating": 4})),
            Action::RateConversation,
            true,
        ),
        case(
            "GET /canned-responses",
            Tenant,
            None,
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "PUT /canned-responses/{short_code}",
            Tenant,
            Some(json!({"content": "Thanks {{customer.name}}"})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "DELETE /canned-responses/{short_code}",
            Tenant,
            None,
            Action::ManageSupportDesk,
            true,
        ),
        case(
            "PUT /me/canned-responses/{short_code}",
            Tenant,
            Some(json!({"content": "Mine"})),
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "DELETE /me/canned-responses/{short_code}",
            Tenant,
            None,
            Action::WorkSupportDesk,
            true,
        ),
        case(
            "POST /labels",
            Tenant,
            Some(json!({"name": "refund"})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "PATCH /labels/{label_name}",
            Tenant,
            Some(json!({"sla": {"first_response_minutes": 15}})),
            Action::ManageSupportDesk,
            false,
        ),
        case(
            "DELETE /labels/{label_name}",
            Tenant,
            None,
            Action::ManageSupportDesk,
            true,
        ),
        case(
            "POST /chat/conversations/{conversation_id}/labels",
            Conversation,
            Some(json!({"labels": ["billing"]})),
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "DELETE /chat/conversations/{conversation_id}/labels/{label_name}",
            Conversation,
            None,
            Action::WorkSupportDesk,
            true,
        ),
        case(
            "PUT /agents/me/availability",
            Tenant,
            Some(json!({"availability": "busy"})),
            Action::WorkSupportDesk,
            false,
        ),
        case(
            "PUT /org/settings",
            Tenant,
            Some(json!({"name": "Acme Shop"})),
            Action::ManageTenant,
            false,
        ),
        case("GET /events", Tenant, None, Action::ManageWebhooks, false),
        case(
            "GET /webhooks/{webhook_id}",
            Tenant,
            None,
            Action::ManageWebhooks,
            false,
        ),
        case(
            "GET /webhooks/{webhook_id}/deliveries",
            Tenant,
            None,
            Action::ManageWebhooks,
            false,
        ),
        case(
            "POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            Tenant,
            None,
            Action::ManageWebhooks,
            false,
        ),
        case(
            "POST /webhooks/{webhook_id}/replay",
            Tenant,
            Some(json!({"since": "2026-01-01T00:00:00Z"})),
            Action::ManageWebhooks,
            false,
        ),
        case(
            "PATCH /webhooks/{webhook_id}",
            Tenant,
            Some(json!({"enabled": false})),
            Action::ManageWebhooks,
            false,
        ),
        case(
            "POST /webhooks/{webhook_id}/rotate-secret",
            Tenant,
            None,
            Action::ManageWebhooks,
            false,
        ),
        case(
            "DELETE /webhooks/{webhook_id}",
            Tenant,
            None,
            Action::ManageWebhooks,
            true,
        ),
    ]
}

/// A caller: who, and how they stand to the group and to the conversation.
struct Caller {
    user: &'static str,
    role: Role,
    group: Relation,
    conversation: Relation,
}

fn callers() -> Vec<Caller> {
    let owner = Relation {
        owner: true,
        member: true,
        sender: true,
    };
    let member = Relation {
        member: true,
        ..Relation::default()
    };
    let none = Relation::default();
    vec![
        Caller {
            user: "u-100",
            role: Role::Customer,
            group: owner,
            conversation: owner,
        },
        Caller {
            user: "u-200",
            role: Role::Customer,
            group: member,
            conversation: none,
        },
        Caller {
            user: "u-300",
            role: Role::Customer,
            group: none,
            conversation: none,
        },
        Caller {
            user: "a-1",
            role: Role::Agent,
            group: none,
            conversation: member,
        },
        Caller {
            user: "a-2",
            role: Role::Agent,
            group: none,
            conversation: none,
        },
        Caller {
            user: "a-9",
            role: Role::Admin,
            group: none,
            conversation: none,
        },
    ]
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Agent => "agent",
        Role::Admin => "admin",
    }
}

/// What the table says `caller` gets on `case`: 404, 403 or success (200).
fn expected(case: &Case, caller: &Caller) -> u16 {
    let (relation, visible) = match case.target {
        Target::Group => (caller.group, caller.group.member),
        // A support room: its members, and the tenant's staff.
        Target::Conversation => (
            caller.conversation,
            caller.conversation.member || caller.role != Role::Customer,
        ),
        Target::Tenant => (Relation::default(), true),
    };
    if !visible {
        404
    } else if policy::allows(case.action, caller.role, relation) {
        200
    } else {
        403
    }
}

/// A world with the group, the conversation and a message of u-100 in each.
struct World {
    app: TestApp,
    group: String,
    conversation: String,
    group_message: String,
    message: String,
    webhook: String,
    delivery: String,
    /// An export of u-200's data (queued, its lock freed: another may start).
    export: String,
    /// An erasure of u-200, recorded (no job runs here).
    erasure: String,
    /// A support team with u-200 in it.
    team: String,
}

impl World {
    async fn new() -> World {
        let app = TestApp::new().await;
        let owner = token("u-100", "acme", "customer");
        let (_, c) = app
            .send(
                "POST /chat/conversations",
                &[],
                &owner,
                Some(json!({"title": "Help", "agent_id": "a-1"})),
                &[],
            )
            .await;
        let (_, g) = app
            .send(
                "POST /rooms",
                &[],
                &owner,
                Some(json!({"type": "group", "name": "Team", "participant_ids": ["u-200"]})),
                &[],
            )
            .await;
        let conversation = c["data"]["conversation_id"].as_str().unwrap().to_owned();
        let group = g["data"]["id"].as_str().unwrap().to_owned();
        let mut ids = Vec::new();
        for room in [&group, &conversation] {
            let (status, posted) = app
                .send(
                    "POST /chat/conversations/{conversation_id}/messages",
                    &[("conversation_id", room)],
                    &owner,
                    Some(json!({"content": "hello"})),
                    &[],
                )
                .await;
            assert_eq!(status, 201, "{posted}");
            ids.push(posted["data"]["id"].as_str().unwrap().to_owned());
        }
        let (webhook, delivery) = app.webhook_with_delivery().await;
        let store = &app.table.runtime.store;
        let export = chat_core::store::Export::new(
            &chat_core::ids::OrgId::parse("acme").unwrap(),
            &chat_core::ids::UserId::parse("u-200").unwrap(),
            &chat_core::ids::UserId::parse("a-9").unwrap(),
            false,
        );
        store.start_export(&export).await.unwrap();
        store.release_export_lock(&export).await.unwrap();
        let erasure = chat_core::store::Erasure::new(
            &chat_core::ids::OrgId::parse("acme").unwrap(),
            &chat_core::ids::UserId::parse("u-200").unwrap(),
            &chat_core::ids::UserId::parse("a-9").unwrap(),
        );
        store.start_erasure(&erasure).await.unwrap();
        let admin = token("a-9", "acme", "admin");
        let (_, team) = app
            .send(
                "POST /teams",
                &[],
                &admin,
                Some(json!({"name": "Billing"})),
                &[],
            )
            .await;
        let team = team["data"]["team_id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .send(
                "PUT /teams/{team_id}/agents/{user_id}",
                &[("team_id", &team), ("user_id", "u-200")],
                &admin,
                Some(json!({"capacity": 2})),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        // Canned responses `thanks`: the tenant's, and each staff caller's own.
        let content = json!({"content": "Thanks {{customer.name}}"});
        for (key, who) in [
            ("PUT /canned-responses/{short_code}", "a-9"),
            ("PUT /me/canned-responses/{short_code}", "a-1"),
            ("PUT /me/canned-responses/{short_code}", "a-2"),
            ("PUT /me/canned-responses/{short_code}", "a-9"),
        ] {
            let role = if who == "a-9" { "admin" } else { "agent" };
            let (status, _) = app
                .send(
                    key,
                    &[("short_code", "thanks")],
                    &token(who, "acme", role),
                    Some(content.clone()),
                    &[],
                )
                .await;
            assert_eq!(status, 201, "{key} as {who}");
        }
        // Labels: `vip` on the conversation, `billing` defined.
        for name in ["vip", "billing"] {
            let (status, _) = app
                .send(
                    "POST /labels",
                    &[],
                    &admin,
                    Some(json!({ "name": name })),
                    &[],
                )
                .await;
            assert_eq!(status, 201);
        }
        let (status, _) = app
            .send(
                "POST /chat/conversations/{conversation_id}/labels",
                &[("conversation_id", &conversation)],
                &admin,
                Some(json!({"labels": ["vip"]})),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        World {
            team,
            erasure: erasure.id.to_string(),
            export: export.id.to_string(),
            app,
            group,
            conversation,
            group_message: ids[0].clone(),
            message: ids[1].clone(),
            webhook,
            delivery,
        }
    }

    /// The conversation resolved (by the tenant's admin).
    async fn resolve(&self) {
        let (status, body) = self
            .app
            .send(
                "PUT /chat/conversations/{conversation_id}",
                &[("conversation_id", &self.conversation)],
                &token("a-9", "acme", "admin"),
                Some(json!({"status": "resolved"})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn call(&self, case: &Case, caller: &Caller) -> (u16, Value) {
        let (room, message) = match case.target {
            Target::Group => (self.group.as_str(), self.group_message.as_str()),
            _ => (self.conversation.as_str(), self.message.as_str()),
        };
        let params = [
            ("room_id", room),
            ("conversation_id", room),
            ("message_id", message),
            ("user_id", "u-200"),
            ("webhook_id", self.webhook.as_str()),
            ("delivery_id", self.delivery.as_str()),
            ("export_id", self.export.as_str()),
            ("erasure_id", self.erasure.as_str()),
            ("team_id", self.team.as_str()),
            ("label_name", "vip"),
            ("short_code", "thanks"),
        ];
        let tok = token(caller.user, "acme", role_name(caller.role));
        self.app
            .send(case.key, &params, &tok, case.body.clone(), case.query)
            .await
    }
}

#[tokio::test]
async fn every_route_is_classified_by_the_action_it_performs() {
    let app = TestApp::new().await;
    let classified: Vec<&str> = cases()
        .iter()
        .map(|c| c.key)
        .chain(VISIBILITY_ONLY.iter().copied())
        .collect();
    for route in &app.routes {
        let key = route.key();
        assert!(
            classified.contains(&key.as_str()),
            "{key} is in template.yaml but not in the permission matrix: which action does it perform?"
        );
    }
    for action in Action::ALL {
        let routed = cases().iter().any(|c| c.action == action);
        assert!(
            routed || action == Action::SeeContact,
            "{action:?} is performed by no route"
        );
    }
}

#[tokio::test]
async fn every_caller_gets_what_the_permission_table_says_on_every_route() {
    let shared = World::new().await;
    let mut failures = Vec::new();
    let mut seen: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for case in cases() {
        for caller in callers() {
            // Removing oneself is leaving, which every member may do.
            if case.action == Action::RemoveMember && caller.user == "u-200" {
                continue;
            }
            let want = expected(&case, &caller);
            // A refusal writes nothing; a success that destroys gets its own world.
            let fresh;
            let world = if case.destructive && want == 200 {
                fresh = World::new().await;
                &fresh
            } else {
                &shared
            };
            if case.action == Action::RateConversation && want == 200 {
                // Only a resolved conversation takes a rating.
                world.resolve().await;
            }
            let (status, body) = world.call(&case, &caller).await;
            let got = if (200..300).contains(&status) {
                200
            } else {
                status
            };
            *seen.entry(want).or_insert(0) += 1;
            if got != want {
                failures.push(format!(
                    "{} as {} ({:?}) on {:?}: got {status}, the table says {want}: {body}",
                    case.key, caller.user, caller.role, case.action
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kind of answer is exercised, many times over.
    for want in [200, 403, 404] {
        assert!(seen.get(&want).copied().unwrap_or(0) >= 10, "{seen:?}");
    }
}
