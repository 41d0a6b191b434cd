//! A member's rooms, newest activity first, with their members' profiles.

use crate::cursor::Partition;
use crate::error::ApiResult;
use crate::ids::{OrgId, RoomId, UserId};
use crate::item::{Item, ItemExt, s, values};
use crate::keys;
use crate::model::{Room, RoomStatus};
use crate::store::table::BATCH_KEYS;
use crate::store::{Profile, Store};
use std::collections::{HashMap, HashSet};

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

impl Store {
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
                next_cursor = Some(crate::cursor::encode_tagged(
                    LISTING,
                    &row_key(&page.items[i - 1]),
                    None,
                ));
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
        let found = found.rows()?;
        let mut rooms: HashMap<String, Room> = found
            .iter()
            .filter_map(Room::from_item)
            .filter(|r| r.deleted_at.is_none())
            .map(|mut r| {
                // The listed member's own rows: they are a member of each.
                if r.large {
                    r.viewer = Some(member.to_string());
                }
                (r.id.to_string(), r)
            })
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
                LISTING,
                q.cursor,
                Partition::gsi1(&gsi1pk),
                crate::cursor::GSI1_KEYS,
                |query| {
                    query
                        .index_name(keys::GSI1)
                        // Rows only: the inbox head shares the partition and would
                        // take a slot of `limit` on the first page.
                        .key_condition_expression("#g1pk = :pk AND begins_with(#g1sk, :rows)")
                        .set_expression_attribute_names(Some(names.into_iter().collect()))
                        .filter_expression(filters.join(" AND "))
                        .scan_index_forward(false)
                        // One row more than the page shows: a page that ends the
                        // list says so.
                        .limit(q.limit as i32 + 1)
                        .set_expression_attribute_values(Some(vals))
                },
            )
            .await?;
        let mut items = page.items;
        let mut next_cursor = page.next_cursor;
        if items.len() > q.limit as usize {
            items.truncate(q.limit as usize);
            next_cursor = items
                .last()
                .map(|row| crate::cursor::encode_tagged(LISTING, &row_key(row), None));
        }
        Ok(super::Page { items, next_cursor })
    }
}

/// A GSI1 row's key: where the next page of the listing starts.
/// The rooms listing's name: its cursors continue it (and not the inbox, which
/// reads the same GSI1 partition).
const LISTING: &str = "list rooms";

fn row_key(row: &Item) -> Item {
    crate::cursor::key_of(row, crate::cursor::GSI1_KEYS)
}
