//! Rooms and memberships.

use super::{Profile, Store, WriteError, WriteResultExt, put, rebuilds, storage_busy};
use crate::auth::Principal;
use crate::cursor::Partition;
use crate::error::{ApiError, ApiResult};
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{Item, ItemBuilder, ItemExt, n, s, values};
use crate::keys;
use crate::model::{Membership, Room, RoomStatus, RoomType};
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::{HashMap, HashSet};

impl Store {
    /// Creates a room with its members (each with an inbox row) in one transaction.
    pub async fn create_room(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> ApiResult<()> {
        let writes = self.room_writes(org, room, member_roles);
        self.table
            .transact(writes, "create room")
            .await
            .or_condition(|c| ApiError::internal("create room", format!("new items exist: {c:?}")))
    }

    /// The room, each member's inbox row and inbox count.
    fn room_writes(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
    ) -> Vec<TransactWriteItem> {
        let mut writes = vec![put(self.name(), room.to_item(org), true)];
        writes.extend(self.room_created_stats(org, room));
        for (user, member_role) in member_roles {
            writes.push(put(
                self.name(),
                crate::model::member_item(org, room, user, member_role, &room.created_at),
                true,
            ));
            writes.push(self.inbox_head_change(org, user, 1));
        }
        writes
    }

    pub(crate) fn inbox_head_change(
        &self,
        org: &OrgId,
        user: &str,
        delta: i64,
    ) -> TransactWriteItem {
        let user = UserId::parse(user).expect("validated member id");
        let update = Update::builder()
            .table_name(self.name())
            .key(keys::PK, s(keys::user_pk(org, &user)))
            .key(keys::SK, s(keys::INBOX_HEAD_SK))
            .update_expression(
                "SET #e = :e, #g1pk = :g1pk, #g1sk = :g1sk, user_id = :u ADD conversation_count :d",
            )
            .expression_attribute_names("#e", keys::ENTITY)
            .expression_attribute_names("#g1pk", keys::GSI1PK)
            .expression_attribute_names("#g1sk", keys::GSI1SK)
            .set_expression_attribute_values(Some(values([
                (":e", s(keys::entity::INBOX_HEAD)),
                (":g1pk", s(keys::inbox_gsi1pk(org, &user))),
                (":g1sk", s(keys::INBOX_HEAD_GSI1SK)),
                (":u", s(user.as_str())),
                (":d", n(delta)),
            ])))
            .build()
            .expect("update has key and expression");
        TransactWriteItem::builder().update(update).build()
    }

    /// The room, read consistently (membership changes must show at once).
    pub async fn get_room(&self, org: &OrgId, room: &RoomId) -> ApiResult<Option<Room>> {
        let item = self
            .table
            .get(
                (keys::room_pk(org, room), keys::ROOM_SK.to_owned()),
                "get room",
            )
            .await?;
        Ok(item.as_ref().and_then(Room::from_item))
    }

    /// The room and the caller's membership, in one BatchGetItem.
    pub async fn get_room_and_membership(
        &self,
        org: &OrgId,
        room: &RoomId,
        user: &UserId,
    ) -> ApiResult<(Option<Room>, Option<Membership>)> {
        let pk = keys::room_pk(org, room);
        let found = self
            .batch_get(
                &[
                    (pk.clone(), keys::ROOM_SK.to_owned()),
                    (pk, keys::member_sk(user)),
                ],
                "get room and membership",
            )
            .await?;
        let room = found.iter().find_map(Room::from_item);
        let membership = found.iter().find_map(Membership::from_item);
        Ok((room, membership))
    }
}

/// The outcome of starting a room that may exist once (an order chat).
pub enum Started {
    Created,
    /// The live room already started for this natural key, as read now (the caller
    /// may not be one of its members).
    Existing(Room),
}

pub struct RoomQuery<'a> {
    pub limit: u32,
    pub cursor: Option<&'a str>,
    pub room_type: Option<&'a str>,
    pub product: Option<&'a str>,
    pub status: Option<RoomStatus>,
}

/// A page of a member's rooms with the profiles of everyone in them.
#[derive(Debug)]
pub struct RoomPage {
    /// Newest activity first; rooms deleted since their row was read are left out.
    pub rooms: Vec<Room>,
    pub profiles: HashMap<String, Profile>,
    pub next_cursor: Option<String>,
}

use super::table::BATCH_KEYS;

impl Store {
    /// Creates a room with its members, or finds the one already started for the
    /// same natural key: the key item is written in the same transaction with a
    /// condition, so two concurrent starts create one room. A key whose room was
    /// deleted is taken over (conditioned on still naming that room), so a deleted
    /// order chat can be started again.
    pub async fn start_room(
        &self,
        org: &OrgId,
        room: &Room,
        member_roles: &[(String, &str)],
        natural_key: Option<String>,
    ) -> ApiResult<Started> {
        let Some(natural_key) = natural_key else {
            self.create_room(org, room, member_roles).await?;
            return Ok(Started::Created);
        };
        let mut replaces: Option<String> = None;
        for attempt in rebuilds() {
            attempt.pause().await;
            let mut writes = vec![self.natural_key_put(&natural_key, room, replaces.as_deref())];
            writes.extend(self.room_writes(org, room, member_roles));
            let cancelled = match self.table.transact(writes, "start room").await {
                Ok(()) => return Ok(Started::Created),
                Err(WriteError::Api(err)) => return Err(err),
                Err(WriteError::ConditionFailed(c)) if c.failed(0) => c,
                Err(WriteError::ConditionFailed(c)) => {
                    return Err(ApiError::internal(
                        "start room",
                        format!("new items exist: {c:?}"),
                    ));
                }
            };
            // The key names another room: that one, unless it was deleted (then the
            // next attempt takes the key over).
            let existing = match cancelled.old_item(0).and_then(|i| i.string("room_id")) {
                Some(id) => id,
                None => self.natural_key_room(&natural_key).await?,
            };
            let existing_id =
                RoomId::parse(&existing).map_err(|e| ApiError::internal("natural key", e))?;
            match self.get_room(org, &existing_id).await? {
                Some(found) if found.deleted_at.is_none() => return Ok(Started::Existing(found)),
                _ => replaces = Some(existing),
            }
        }
        Err(storage_busy())
    }

    /// The natural key item, new or replacing the key of a deleted room.
    fn natural_key_put(
        &self,
        natural_key: &str,
        room: &Room,
        replaces: Option<&str>,
    ) -> TransactWriteItem {
        let item = ItemBuilder::new()
            .str(keys::PK, natural_key)
            .str(keys::SK, keys::ORDER_KEY_SK)
            .str(keys::ENTITY, keys::entity::ORDER_KEY)
            .str("room_id", room.id.as_str())
            .build();
        let mut put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = match replaces {
            None => put.condition_expression("attribute_not_exists(PK)"),
            Some(old) => put
                .condition_expression("attribute_not_exists(PK) OR room_id = :old")
                .expression_attribute_values(":old", s(old)),
        };
        TransactWriteItem::builder()
            .put(put.build().expect("put has item"))
            .build()
    }

    async fn natural_key_room(&self, natural_key: &str) -> ApiResult<String> {
        self.table
            .get(
                (natural_key.to_owned(), keys::ORDER_KEY_SK.to_owned()),
                "natural key",
            )
            .await?
            .as_ref()
            .and_then(|i| i.string("room_id"))
            .ok_or_else(storage_busy)
    }

    /// A page of `member`'s rooms with their members' profiles in two requests: the
    /// Query of their inbox rows (which carry their room's member list), then one
    /// BatchGetItem of the rooms and the profiles. A page whose rooms have more
    /// distinct members than one BatchGetItem takes ends early, its cursor after the
    /// last room that fit (a room has at most 40 members, so one always fits).
    pub async fn room_page(
        &self,
        org: &OrgId,
        member: &UserId,
        q: RoomQuery<'_>,
    ) -> ApiResult<RoomPage> {
        let page = self.list_member_rooms(org, member, q).await?;
        let mut item_keys: Vec<(String, String)> = Vec::new();
        let mut order: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut next_cursor = page.next_cursor;
        for (i, row) in page.items.iter().enumerate() {
            let Some(room_id) = row.str("room_id").and_then(|r| RoomId::parse(r).ok()) else {
                continue;
            };
            let newcomers: Vec<UserId> = row
                .string_set("members")
                .iter()
                .filter(|m| !seen.contains(m.as_str()))
                .filter_map(|m| UserId::parse(m).ok())
                .collect();
            if !order.is_empty() && item_keys.len() + 1 + newcomers.len() > BATCH_KEYS {
                next_cursor = Some(crate::cursor::encode(&row_key(&page.items[i - 1])));
                break;
            }
            item_keys.push((keys::room_pk(org, &room_id), keys::ROOM_SK.to_owned()));
            order.push(room_id.to_string());
            for user in newcomers {
                item_keys.push((keys::user_pk(org, &user), keys::PROFILE_SK.to_owned()));
                seen.insert(user.to_string());
            }
        }
        let found = self.batch_get(&item_keys, "rooms page").await?;
        let mut rooms: HashMap<String, Room> = found
            .iter()
            .filter_map(Room::from_item)
            .filter(|r| r.deleted_at.is_none())
            .map(|r| (r.id.to_string(), r))
            .collect();
        let profiles = found
            .iter()
            .filter_map(Profile::from_item)
            .map(|p| (p.user_id.clone(), p))
            .collect();
        Ok(RoomPage {
            rooms: order.iter().filter_map(|id| rooms.remove(id)).collect(),
            profiles,
            next_cursor,
        })
    }

    /// The caller's (or, for staff, `member`'s) rooms, newest activity first: their
    /// inbox rows on GSI1, filtered by type, product and status.
    pub async fn list_member_rooms(
        &self,
        org: &OrgId,
        member: &UserId,
        q: RoomQuery<'_>,
    ) -> ApiResult<super::Page<Item>> {
        let gsi1pk = keys::inbox_gsi1pk(org, member);
        let mut filters = vec!["#e = :member".to_owned()];
        let mut vals = values([
            (":pk", s(&gsi1pk)),
            (":rows", s(keys::INBOX_ENTRY_PREFIX)),
            (":member", s(keys::entity::MEMBER)),
        ]);
        let mut names = vec![
            ("#g1pk".to_owned(), keys::GSI1PK.to_owned()),
            ("#g1sk".to_owned(), keys::GSI1SK.to_owned()),
            ("#e".to_owned(), keys::ENTITY.to_owned()),
        ];
        for (name, value) in [
            ("room_type", q.room_type),
            ("product", q.product),
            ("status", q.status.map(RoomStatus::as_str)),
        ] {
            if let Some(value) = value {
                filters.push(format!("#{name} = :{name}"));
                vals.insert(format!(":{name}"), s(value));
                names.push((format!("#{name}"), name.to_owned()));
            }
        }
        let page = self
            .table
            .query_page(
                "list rooms",
                q.cursor,
                Partition {
                    attribute: keys::GSI1PK,
                    value: &gsi1pk,
                },
                &[keys::PK, keys::SK, keys::GSI1PK, keys::GSI1SK],
                |query| {
                    query
                        .index_name(keys::GSI1)
                        // Rows only: the inbox head shares the partition and would
                        // take a slot of `limit` on the first page.
                        .key_condition_expression("#g1pk = :pk AND begins_with(#g1sk, :rows)")
                        .set_expression_attribute_names(Some(names.into_iter().collect()))
                        .filter_expression(filters.join(" AND "))
                        .scan_index_forward(false)
                        .limit(q.limit as i32)
                        .set_expression_attribute_values(Some(vals))
                },
            )
            .await?;
        Ok(super::Page {
            items: page.items,
            next_cursor: page.next_cursor,
        })
    }

    /// Adds a member: the room's member list and version, their inbox row and count,
    /// in one transaction conditioned on the room as the caller read it.
    pub async fn add_member(&self, who: &Principal, room: Room, user: &UserId) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "add member", |room| {
                if room.is_member(user.as_str()) {
                    return Err(ApiError::Conflict {
                        code: "already_member",
                        message: "the user is already a member".into(),
                    });
                }
                if room.room_type == RoomType::Direct {
                    // Its natural key is the pair; a third member would make it a group.
                    return Err(ApiError::Conflict {
                        code: "direct_chat",
                        message: "a direct chat stays between two users; start a group".into(),
                    });
                }
                if room.members.len() >= crate::model::MAX_MEMBERS {
                    return Err(ApiError::Conflict {
                        code: "room_full",
                        message: format!(
                            "a room has at most {} members",
                            crate::model::MAX_MEMBERS
                        ),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                ]);
                let mut joined = room.clone();
                joined.members.push(user.to_string());
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now ADD member_version :one, members :user",
                        vals,
                        &[],
                    ),
                    put(
                        self.name(),
                        crate::model::member_item(
                            &who.org,
                            &joined,
                            user.as_str(),
                            "participant",
                            &now,
                        ),
                        true,
                    ),
                    self.inbox_head_change(&who.org, user.as_str(), 1),
                ];
                writes.extend(self.member_list_changes(who, room, "ADD", user));
                Ok(writes)
            })
            .await?;
        room.members.push(user.to_string());
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
    }

    /// Removes a member (never the last one), from the room as the caller read it:
    /// they lose access at once, since every read and write checks the room's
    /// current member list.
    pub async fn remove_member(
        &self,
        who: &Principal,
        room: Room,
        user: &UserId,
    ) -> ApiResult<Room> {
        let now = crate::time::now_string();
        let room_id = room.id.clone();
        let mut room = self
            .room_transaction_from(who, &room_id, room, "remove member", |room| {
                if !room.is_member(user.as_str()) {
                    return Err(ApiError::NotFound("member"));
                }
                if room.members.len() == 1 {
                    return Err(ApiError::Conflict {
                        code: "last_member",
                        message: "a room keeps at least one member; delete the room instead".into(),
                    });
                }
                let vals = values([
                    (":one", n(1)),
                    (":user", AttributeValue::Ss(vec![user.to_string()])),
                    (":now", s(&now)),
                ]);
                let mut writes = vec![
                    self.room_update(
                        room,
                        who,
                        "SET updated_at = :now ADD member_version :one DELETE members :user",
                        vals,
                        &[],
                    ),
                    self.member_delete(who, &room.id, user),
                    self.inbox_head_change(&who.org, user.as_str(), -1),
                ];
                writes.extend(self.member_list_changes(who, room, "DELETE", user));
                Ok(writes)
            })
            .await?;
        room.members.retain(|m| m != user.as_str());
        room.member_version += 1;
        room.updated_at = now;
        Ok(room)
    }

    /// Keeps the member list copied on the other members' rows in step.
    pub(crate) fn member_list_changes(
        &self,
        who: &Principal,
        room: &Room,
        action: &str,
        user: &UserId,
    ) -> Vec<TransactWriteItem> {
        room.members
            .iter()
            .filter(|m| m.as_str() != user.as_str())
            .filter_map(|m| UserId::parse(m).ok())
            .map(|m| {
                let vals = values([(":user", AttributeValue::Ss(vec![user.to_string()]))]);
                self.member_update(
                    who,
                    &room.id,
                    &m,
                    &format!("{action} members :user"),
                    vals,
                    &[],
                )
            })
            .collect()
    }
}

/// A GSI1 row's key: where the next page of the listing starts.
fn row_key(row: &Item) -> Item {
    [keys::PK, keys::SK, keys::GSI1PK, keys::GSI1SK]
        .into_iter()
        .filter_map(|k| row.get(k).map(|v| (k.to_owned(), v.clone())))
        .collect()
}
