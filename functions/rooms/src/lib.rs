//! The `rooms` function: shared chat spaces (order chats, support rooms, team rooms),
//! their members, the tenant's products, its users' profiles and their notification
//! preferences and push subscriptions.

use chat_core::app::path_param;
use chat_core::auth::Principal;
use chat_core::ids::{Role, RoomId, UserId, path_id};
use chat_core::keys;
use chat_core::model::{MAX_START_MEMBERS, Room, RoomStatus, RoomType, SlaView};
use chat_core::policy::{self, Action, Relation};
use chat_core::request::{Query, json_body};
use chat_core::store::{
    MAX_PRODUCTS_PAGE, Product, Profile, RoomQuery, SharedChanges, Started, Store,
};
use chat_core::{ApiError, ApiResult, Reply};
use lambda_http::Request;
use serde_json::{Value, json};
use std::collections::HashMap;

chat_core::route_table! { app: App, who, req;
    "POST /rooms" => start(&app.store, who, req),
    "GET /rooms" => list(&app.store, who, req),
    "GET /rooms/{room_id}" => get(&app.store, who, req),
    "PATCH /rooms/{room_id}" => update(&app.store, who, req),
    "DELETE /rooms/{room_id}" => delete(&app.store, who, req),
    "POST /rooms/{room_id}/members" => add_member(&app.store, who, req),
    "GET /rooms/{room_id}/members" => list_members(&app.store, who, req),
    "DELETE /rooms/{room_id}/members/{user_id}" => remove_member(&app.store, who, req),
    "GET /products" => list_products(&app.store, who, req),
    "POST /products" => create_product(&app.store, who, req),
    "PUT /profiles/me" => put_profile(&app.store, who, req),
    "GET /profiles/{user_id}" => get_profile(&app.store, who, req),
    "POST /realtime/tickets" => realtime_ticket(&app.store, who),
    "GET /me/notification-settings" => notifications::get_settings(app, who),
    "PUT /me/notification-settings" => notifications::put_settings(app, who, req),
    "PUT /rooms/{room_id}/notifications" => notifications::mute_room(&app.store, who, req),
    "POST /me/push-subscriptions" => notifications::add_push_subscription(app, who, req),
    "DELETE /me/push-subscriptions/{subscription_id}" => notifications::delete_push_subscription(&app.store, who, req),
    "POST /me/devices" => notifications::add_device(&app.store, who, req),
    "DELETE /me/devices/{device_id}" => notifications::delete_device(&app.store, who, req),
    "GET /org/settings" => get_org_settings(app, who),
    "PUT /org/settings" => put_org_settings(app, who, req),
}

mod notifications;

use chat_core::commands::rooms::{
    AddMember, NewMembers, NewProduct, OrgSettings, ProfileFields, PutOrgSettings, PutProfile,
    RoomDraft, StartRoom, UpdateRoom, external_id,
};
pub use chat_core::commands::rooms::{MAX_DETAIL_CHARS, MAX_METADATA_BYTES, MAX_NAME_CHARS};
/// Rooms per page of GET /rooms: with their members' profiles they must fit one
/// BatchGetItem of 100 keys in the common case.
pub const MAX_ROOMS_PAGE: u32 = 25;

/// This function's app: built once per cold start, then answers every event.
pub struct App {
    auth: chat_core::auth::AuthConfig,
    store: Store,
    /// The local stack's own push service may be on http://127.0.0.1.
    allow_loopback: bool,
    /// What browsers subscribe to Web Push with (answered with the settings).
    vapid_public_key: Option<String>,
    /// Where the tenant's email inbox receives (`INBOUND_EMAIL_DOMAIN`).
    inbound_domain: Option<String>,
}

impl App {
    pub fn new(runtime: chat_core::Runtime) -> Self {
        App {
            allow_loopback: runtime.config.local,
            vapid_public_key: runtime.config.notify.vapid_public_key.clone(),
            inbound_domain: runtime.config.notify.inbound_email_domain.clone(),
            auth: runtime.config.auth,
            store: runtime.store,
        }
    }
}

/// The tenant's settings: every signed-in user of it may read them (its name is what
/// its customers see on its mails); `null` fields until an admin sets them.
async fn get_org_settings(app: &App, who: &Principal) -> ApiResult<Reply> {
    let settings = app.store.org_settings(&who.org).await?;
    Ok(Reply::ok(
        "Tenant settings",
        org_settings_json(app, who, settings.as_ref()),
    ))
}

/// The settings as `who` may see them: the inbox's address to everyone (it is for
/// the tenant's website), whom it assigns to staff only.
fn org_settings_json(app: &App, who: &Principal, settings: Option<&OrgSettings>) -> Value {
    let inbox = settings.and_then(|s| s.email_inbox.as_ref());
    let address = inbox.and_then(|inbox| {
        Some(format!(
            "{}@{}",
            inbox.local_part,
            app.inbound_domain.as_deref()?
        ))
    });
    let mut answer = json!({
        "org": who.org,
        "name": settings.map(|s| s.name.clone()),
        "email_inbox_address": address,
    });
    if who.role.is_staff() {
        answer["email_inbox"] = json!(inbox);
    }
    answer
}

async fn put_org_settings(app: &App, who: &Principal, req: &Request) -> ApiResult<Reply> {
    policy::require(Action::ManageTenant, who, Relation::default())?;
    let settings = OrgSettings::try_from(json_body::<PutOrgSettings>(req)?)?;
    app.store.put_org_settings(&who.org, &settings).await?;
    Ok(Reply::ok(
        "Tenant settings saved",
        org_settings_json(app, who, Some(&settings)),
    ))
}

async fn start(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let body = json_body::<StartRoom>(req)?;
    if who.role == Role::Customer && body.customer_id.as_ref().is_some_and(|c| *c != who.user) {
        return Err(ApiError::Forbidden(
            "a customer starts order chats for themself only".into(),
        ));
    }
    let draft = RoomDraft::try_from(body)?;
    // The agent of an agent's order chat is the caller when they are one.
    let agent_id = draft.agent_id.clone().or_else(|| {
        (draft.room_type == RoomType::AgentToUser && who.role.is_staff())
            .then(|| who.user.to_string())
    });
    let customer_id = order_customer(&draft, who, agent_id.as_deref())?;
    let members = members_of(&draft, who, agent_id.as_deref(), customer_id.as_ref())?;
    let natural_key = natural_key(
        &draft,
        who,
        agent_id.as_deref(),
        customer_id.as_ref(),
        &members,
    );
    let room = Room {
        detail: draft.detail,
        product: draft.product,
        order_id: draft.order_id,
        vendor_id: draft.vendor_id,
        customer_id: customer_id.map(|c| c.to_string()),
        agent_id: agent_id.clone(),
        assignee_id: agent_id,
        metadata: draft.metadata,
        ..Room::open(
            RoomId::generate(),
            draft.room_type,
            draft.name,
            who.user.to_string(),
            members.iter().map(|(m, _)| m.clone()).collect(),
            chat_core::time::now_string(),
        )
    };
    // Write responses list members without profiles: a write is one transaction
    // (plus the read it decides on); GET /rooms/{room_id} adds them.
    match store
        .start_room(&who.org, &room, &members, natural_key)
        .await?
    {
        Started::Created => Ok(Reply::created(
            "Room created successfully",
            room_json(&room, None),
        )),
        Started::Existing(room) if room.visible_to(who) => {
            let room = with_members(store, who, room, &members).await?;
            Ok(Reply::ok("Room already exists", room_json(&room, None)))
        }
        // Someone else's order chat: joining it takes its owner, an agent or an admin.
        Started::Existing(_) => Err(ApiError::Conflict {
            code: "room_exists",
            message: "this chat was already started by other members".into(),
        }),
    }
}

/// The existing room of a start, with the members the start named: a start never
/// answers a room whose members differ from the ones asked for. Who may add members
/// gets them added (one transaction each); anyone else is refused, naming who is
/// missing.
async fn with_members(
    store: &Store,
    who: &Principal,
    mut room: Room,
    members: &[(String, &str)],
) -> ApiResult<Room> {
    let missing: Vec<UserId> = members
        .iter()
        .filter(|(m, _)| !room.is_member(m))
        .filter_map(|(m, _)| UserId::parse(m).ok())
        .collect();
    if missing.is_empty() {
        return Ok(room);
    }
    if !policy::allows(Action::AddMember, who.role, policy::relation_to(who, &room)) {
        let names: Vec<&str> = missing.iter().map(UserId::as_str).collect();
        return Err(ApiError::Conflict {
            code: "room_members_differ",
            message: format!(
                "this chat exists without {}; its owner, an agent or an admin adds members",
                names.join(", ")
            ),
        });
    }
    for user in &missing {
        room = store.add_member(who, room, user).await?;
    }
    Ok(room)
}

/// An order chat's customer: a customer is their own (naming another was refused);
/// staff name it, in `customer_id` or as the first participant who is neither the
/// caller nor the agent. Other rooms have none.
fn order_customer(
    draft: &RoomDraft,
    who: &Principal,
    agent_id: Option<&str>,
) -> ApiResult<Option<UserId>> {
    if draft.order_id.is_none() {
        return Ok(None);
    }
    if who.role == Role::Customer {
        return Ok(Some(who.user.clone()));
    }
    draft
        .customer_id
        .clone()
        .or_else(|| {
            draft
                .participant_ids
                .iter()
                .find(|p| **p != who.user && Some(p.as_str()) != agent_id)
                .cloned()
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "customer_id",
                "an order chat started by staff names its customer (customer_id or participant_ids)",
            )
        })
}

/// Members of a new room with their roles: the caller (owner), the participants (the
/// order's customer among them) and the agent, each once.
fn members_of(
    draft: &RoomDraft,
    who: &Principal,
    agent_id: Option<&str>,
    customer_id: Option<&UserId>,
) -> ApiResult<Vec<(String, &'static str)>> {
    let mut members: Vec<(String, &str)> = vec![(who.user.to_string(), "owner")];
    for participant in customer_id.into_iter().chain(&draft.participant_ids) {
        if !members.iter().any(|(m, _)| m == participant.as_str()) {
            members.push((participant.to_string(), "participant"));
        }
    }
    if let Some(agent) = agent_id {
        match members.iter_mut().find(|(m, _)| m == agent) {
            Some(existing) if existing.1 != "owner" => existing.1 = "agent",
            Some(_) => {}
            None => members.push((agent.to_owned(), "agent")),
        }
    }
    if members.len() > MAX_START_MEMBERS {
        return Err(ApiError::invalid(
            "participant_ids",
            format!(
                "a room starts with at most {MAX_START_MEMBERS} members; add more with POST /rooms/{{room_id}}/members"
            ),
        ));
    }
    if draft.room_type == RoomType::Direct && members.len() != 2 {
        return Err(ApiError::invalid(
            "participant_ids",
            "a direct chat is between the caller and one other user",
        ));
    }
    Ok(members)
}

/// Order chats and direct chats exist once per natural key. An order chat's key names
/// its customer: another customer naming the same order starts another room, never a
/// seat in this one.
fn natural_key(
    draft: &RoomDraft,
    who: &Principal,
    agent_id: Option<&str>,
    customer_id: Option<&UserId>,
    members: &[(String, &str)],
) -> Option<String> {
    match draft.room_type {
        RoomType::AgentToUser | RoomType::VendorToUser => Some(keys::natural_key_pk(
            &who.org,
            // An absent part is empty: no id is (ids are 1+ characters).
            &[
                draft.room_type.as_str(),
                draft.order_id.as_deref().unwrap_or_default(),
                draft.vendor_id.as_deref().unwrap_or_default(),
                agent_id.unwrap_or_default(),
                customer_id.map(UserId::as_str).unwrap_or_default(),
            ],
        )),
        RoomType::Direct => {
            let mut pair = [members[0].0.as_str(), members[1].0.as_str()];
            pair.sort();
            Some(keys::natural_key_pk(
                &who.org,
                &["direct", pair[0], pair[1]],
            ))
        }
        _ => None,
    }
}

/// A single-use ticket for the WebSocket API's `$connect` (`?ticket=`): browsers
/// cannot set headers on a WebSocket, and a long-lived token in a URL ends up in logs.
async fn realtime_ticket(store: &Store, who: &Principal) -> ApiResult<Reply> {
    let (ticket, expires_at) = store.issue_ticket(who).await?;
    Ok(Reply::created(
        "Ticket issued",
        json!({
            "ticket": ticket,
            "expires_at": expires_at,
            "expires_in": chat_core::store::TICKET_TTL_SECS,
        }),
    ))
}

async fn visible_room(store: &Store, who: &Principal, id: &RoomId) -> ApiResult<Room> {
    let room = store.get_room(&who.org, id).await?;
    store
        .viewed(who, room)
        .await?
        .filter(|r| r.visible_to(who))
        .ok_or(ApiError::NotFound("room"))
}

/// The room as the API shows it; with `profiles`, each member carries their profile
/// snapshot (a member without a profile shows nulls).
fn room_json(room: &Room, profiles: Option<&HashMap<String, Profile>>) -> Value {
    let members: Vec<Value> = room
        .members
        .iter()
        .map(|m| {
            let role = if *m == room.owner_id {
                "owner"
            } else if room.agent_id.as_deref() == Some(m.as_str()) {
                "agent"
            } else {
                "participant"
            };
            let mut member = json!({ "user_id": m, "role": role });
            if let Some(profiles) = profiles {
                let profile = profiles.get(m).cloned().unwrap_or_default();
                member["username"] = json!(profile.username);
                member["email"] = json!(profile.email);
                member["phone"] = json!(profile.phone);
                member["display_image"] = json!(profile.display_image);
            }
            member
        })
        .collect();
    let metadata: Value = room
        .metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null);
    json!({
        "id": room.id,
        "room_id": room.id,
        "type": room.room_type,
        "name": room.title,
        "room_name": room.title,
        "detail": room.detail,
        "product": room.product,
        "order_id": room.order_id,
        "vendor_id": room.vendor_id,
        "customer_id": room.customer_id,
        "owner_id": room.owner_id,
        "agent_id": room.agent_id,
        "status": room.status,
        "metadata": metadata,
        "participant_ids": room.members,
        "members": members,
        "member_count": room.member_count,
        // A large room's members are listed by GET /rooms/{room_id}/members.
        "large": room.large,
        "total_messages": room.total_messages,
        "last_message_at": room.last_message_at,
        "last_messages": room.last_message.iter().collect::<Vec<_>>(),
        "created_at": room.created_at,
        "updated_at": room.updated_at,
        "last_seq": room.last_seq,
    })
}

/// A support room as the desk sees it: with its labels and SLA due times (the
/// customer's view has neither).
fn desk_fields(mut json: Value, room: &Room, who: &Principal) -> Value {
    if room.room_type == RoomType::Support && who.role.is_staff() {
        json["labels"] = json!(room.labels);
        json["sla"] = json!(SlaView::of(room));
    }
    json
}

async fn list(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let q = Query::of(req);
    let member = match q.get("member") {
        None => who.user.clone(),
        Some(_) if !policy::allows(Action::ListOthersRooms, who.role, Relation::default()) => {
            return Err(policy::Refused(Action::ListOthersRooms).into());
        }
        Some(raw) => UserId::parse(raw).map_err(|e| ApiError::invalid("member", e))?,
    };
    let room_type = q
        .get("type")
        .map(|t| RoomType::parse(t).ok_or_else(|| ApiError::invalid("type", "must be a room type")))
        .transpose()?;
    let status = q
        .get("status")
        .map(|s| RoomStatus::parse("status", s))
        .transpose()?;
    let product = q
        .get("product")
        .map(|p| external_id("product", p))
        .transpose()?;
    let limit = q.limit(20, MAX_ROOMS_PAGE)?;
    let page = store
        .room_page(
            &who.org,
            &member,
            RoomQuery {
                limit,
                cursor: q.get("cursor"),
                room_type: room_type.map(RoomType::as_str),
                product: product.as_deref(),
                status,
            },
        )
        .await?;
    let rooms: Vec<Value> = page
        .rooms
        .iter()
        // Another member's rooms, as far as the caller may see them.
        .filter(|room| room.visible_to(who))
        .map(|room| desk_fields(room_json(room, Some(&page.profiles)), room, who))
        .collect();
    Ok(Reply::ok(
        format!("Found {} rooms", rooms.len()),
        json!({
            "rooms": rooms,
            "limit": limit,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

async fn get(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let room = visible_room(store, who, &id).await?;
    let profiles = store
        .rooms_with_profiles(&who.org, &[], &room.members)
        .await?
        .1;
    Ok(Reply::ok(
        "Room found",
        desk_fields(room_json(&room, Some(&profiles)), &room, who),
    ))
}

async fn update(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let body = json_body::<UpdateRoom>(req)?;
    let room = visible_room(store, who, &id).await?;
    policy::require(Action::ChangeRoom, who, policy::relation_to(who, &room))?;
    let changes = SharedChanges::try_from(body)?;
    let room = store
        .update_conversation_from(who, room, &changes, &Default::default())
        .await?;
    Ok(Reply::ok(
        "Room updated successfully",
        room_json(&room, None),
    ))
}

async fn delete(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let room = visible_room(store, who, &id).await?;
    policy::require(Action::DeleteRoom, who, policy::relation_to(who, &room))?;
    store.delete_room(who, room).await?;
    Ok(Reply::ok(
        "Room deleted successfully",
        json!({ "room_id": id }),
    ))
}

async fn add_member(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let body: AddMember = json_body(req)?;
    let room = visible_room(store, who, &id).await?;
    policy::require(Action::AddMember, who, policy::relation_to(who, &room))?;
    let NewMembers(users) = NewMembers::try_from(body)?;
    if users.len() == 1 {
        let room = store.add_member(who, room, &users[0]).await?;
        return Ok(Reply::created("Member added", room_json(&room, None)));
    }
    let (room, added) = store.add_members(who, room, &users).await?;
    let mut answer = room_json(&room, None);
    answer["added"] = json!(added);
    Ok(Reply::created(
        format!("{} members added", added.len()),
        answer,
    ))
}

/// A page of the room's members (a large room's are only listed here).
async fn list_members(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let q = Query::of(req);
    let room = visible_room(store, who, &id).await?;
    let limit = q.limit(50, chat_core::store::MAX_MEMBERS_PAGE)?;
    let page = store
        .list_members(&who.org, &id, q.get("cursor"), limit)
        .await?;
    let members: Vec<Value> = page
        .items
        .iter()
        .map(|m| json!({"user_id": m.user_id, "role": m.member_role, "joined_at": m.joined_at}))
        .collect();
    Ok(Reply::ok(
        format!("Found {} members", members.len()),
        json!({
            "room_id": id,
            "member_count": room.member_count,
            "members": members,
            "limit": limit,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

async fn remove_member(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let id = path_id(path_param(req, "room_id"), "room")?;
    let user = path_param(req, "user_id")
        .and_then(|u| UserId::parse(u).ok())
        .ok_or(ApiError::NotFound("member"))?;
    let room = visible_room(store, who, &id).await?;
    // Members may leave; the owner, agents and admins remove others.
    if user != who.user {
        policy::require(Action::RemoveMember, who, policy::relation_to(who, &room))?;
    }
    store.remove_member(who, room, &user).await?;
    Ok(Reply::ok(
        "Member removed",
        json!({ "room_id": id, "user_id": user }),
    ))
}

async fn list_products(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let q = Query::of(req);
    let limit = q.limit(MAX_PRODUCTS_PAGE, MAX_PRODUCTS_PAGE)?;
    let page = store
        .list_products(&who.org, limit, q.get("cursor"))
        .await?;
    Ok(Reply::ok(
        format!("Found {} products", page.items.len()),
        json!({
            "products": page.items,
            "limit": limit,
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor.is_some(),
        }),
    ))
}

async fn create_product(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    // Authorization before validation: a role without the right learns no schema.
    policy::require(Action::ChangeCatalogue, who, Relation::default())?;
    let product = Product::try_from(json_body::<NewProduct>(req)?)?;
    store.create_product(&who.org, &product).await?;
    Ok(Reply::created("Product created", product))
}

async fn put_profile(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let fields = ProfileFields::try_from(json_body::<PutProfile>(req)?)?;
    let profile = Profile {
        user_id: who.user.to_string(),
        username: fields.username,
        email: fields.email,
        phone: fields.phone,
        display_image: fields.display_image,
        updated_at: Some(chat_core::time::now_string()),
    };
    store.put_profile(&who.org, &who.user, &profile).await?;
    Ok(Reply::ok("Profile saved", profile))
}

async fn get_profile(store: &Store, who: &Principal, req: &Request) -> ApiResult<Reply> {
    let user = path_param(req, "user_id")
        .and_then(|u| UserId::parse(u).ok())
        .ok_or(ApiError::NotFound("profile"))?;
    let yours = user == who.user;
    // One's own profile exists before it is filled in (a client reads it to fill its
    // form); another's is 404 until its user writes it.
    let mut profile = match store.get_profile(&who.org, &user).await? {
        Some(profile) => profile,
        None if yours => chat_core::store::Profile {
            user_id: user.to_string(),
            ..Default::default()
        },
        None => return Err(ApiError::NotFound("profile")),
    };
    // Contact details are its user's, staff's and their rooms' fellow members'; only
    // a customer looking at someone else costs the read of whether they share a room.
    let relation = Relation {
        owner: yours,
        member: !yours
            && !who.role.is_staff()
            && store.shares_a_room(&who.org, &who.user, &user).await?,
        sender: false,
    };
    if !policy::allows(Action::SeeContact, who.role, relation) {
        profile.email = None;
        profile.phone = None;
    }
    Ok(Reply::ok("Profile found", profile))
}
