//! Who may do what: one decision per action, from the caller's role and how they
//! stand to the room (owner, member, sender of the message). Handlers and the store
//! ask here and nowhere else; a refusal is a domain value that the HTTP edge turns
//! into `403 forbidden`. Seeing a room at all is [`crate::model::Room::visible_to`]
//! (a room one may not see is `404`, the answer a missing id gets).

use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::Role;

/// An action that not every caller who sees the room may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// PATCH /rooms/{id}: name, detail, status.
    ChangeRoom,
    AddMember,
    /// Removing someone else (anyone may leave).
    RemoveMember,
    /// DELETE /rooms/{id}, or a conversation for everyone.
    DeleteRoom,
    /// Setting or clearing a conversation's assignee.
    Assign,
    PostNote,
    EditMessage,
    DeleteMessage,
    /// The caller's own state in a room: pin, archive, read marker, leaving.
    OwnView,
    ChangeCatalogue,
    /// A profile's email and phone: its user ("owner"), staff, and whoever shares a
    /// room with them ("member").
    SeeContact,
    /// GET /rooms?member= of another user.
    ListOthersRooms,
    ReadGlobalAnalytics,
    /// The tenant's webhook endpoints.
    ManageWebhooks,
    /// The tenant's settings (its name).
    ManageTenant,
    /// The audit log, retention, and a person's export or erasure (docs/data-protection.md).
    ManageDataProtection,
    /// The support desk's setup: teams, their agents and capacities; labels.
    ManageSupportDesk,
    /// The support desk's work: teams and their queues read, one's availability,
    /// labels read and put on conversations.
    WorkSupportDesk,
    /// Rating a resolved conversation (its customer's satisfaction, CSAT).
    RateConversation,
}

impl Action {
    pub const ALL: [Action; 19] = [
        Action::ChangeRoom,
        Action::AddMember,
        Action::RemoveMember,
        Action::DeleteRoom,
        Action::Assign,
        Action::PostNote,
        Action::EditMessage,
        Action::DeleteMessage,
        Action::OwnView,
        Action::ChangeCatalogue,
        Action::SeeContact,
        Action::ListOthersRooms,
        Action::ReadGlobalAnalytics,
        Action::ManageWebhooks,
        Action::ManageTenant,
        Action::ManageDataProtection,
        Action::ManageSupportDesk,
        Action::WorkSupportDesk,
        Action::RateConversation,
    ];

    /// Who may, in words (the refusal's message and the docs' table).
    pub fn who_may(self) -> &'static str {
        match self {
            Action::ChangeRoom => {
                "only the owner, agents and admins change a room's name, detail or status"
            }
            Action::AddMember => "only the owner, agents and admins add members",
            Action::RemoveMember => "only the owner, agents and admins remove members",
            Action::DeleteRoom => "only the owner or an admin deletes a room",
            Action::Assign => "only agents and admins assign a conversation",
            Action::PostNote => "internal notes are for agents and admins",
            Action::EditMessage => "only the sender edits a message",
            Action::DeleteMessage => "only the sender or an admin deletes a message",
            Action::OwnView => "only members have their own view of a conversation",
            Action::ChangeCatalogue => "only admins change the product catalogue",
            Action::SeeContact => {
                "a profile's contact details are for its user, staff and who shares a room with them"
            }
            Action::ListOthersRooms => "only agents and admins list another member's rooms",
            Action::ReadGlobalAnalytics => "global analytics are for admins",
            Action::ManageWebhooks => "only admins manage the tenant's webhooks",
            Action::ManageTenant => "only admins change the tenant's settings",
            Action::ManageDataProtection => {
                "only admins read the audit log and manage retention, exports and erasure"
            }
            Action::ManageSupportDesk => "only admins manage the support desk's teams and labels",
            Action::WorkSupportDesk => "the support desk is for agents and admins",
            Action::RateConversation => "only the conversation's customer rates it",
        }
    }
}

/// How the caller stands to what the action touches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relation {
    /// Started the room.
    pub owner: bool,
    /// Is in the room's member list.
    pub member: bool,
    /// Sent the message acted on.
    pub sender: bool,
}

/// The permission table: whether a caller of `role` standing in `relation` may take
/// `action`. Written once; docs/architecture.md shows it.
pub fn allows(action: Action, role: Role, relation: Relation) -> bool {
    let staff = role.is_staff();
    let admin = role == Role::Admin;
    match action {
        Action::ChangeRoom | Action::AddMember | Action::RemoveMember => staff || relation.owner,
        Action::DeleteRoom => admin || relation.owner,
        Action::Assign | Action::PostNote | Action::ListOthersRooms | Action::WorkSupportDesk => {
            staff
        }
        Action::EditMessage => relation.sender,
        Action::RateConversation => relation.owner,
        Action::DeleteMessage => admin || relation.sender,
        Action::OwnView => relation.member,
        Action::SeeContact => staff || relation.owner || relation.member,
        Action::ChangeCatalogue
        | Action::ReadGlobalAnalytics
        | Action::ManageWebhooks
        | Action::ManageTenant
        | Action::ManageDataProtection
        | Action::ManageSupportDesk => admin,
    }
}

/// A refused action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub Action);

impl From<Refused> for ApiError {
    fn from(Refused(action): Refused) -> ApiError {
        ApiError::Forbidden(action.who_may().into())
    }
}

/// [`allows`] for the caller, as a result.
pub fn require(action: Action, who: &Principal, relation: Relation) -> Result<(), Refused> {
    if allows(action, who.role, relation) {
        Ok(())
    } else {
        Err(Refused(action))
    }
}

/// How `who` stands to `room` (not to a message: set `sender` for that).
pub fn relation_to(who: &Principal, room: &crate::model::Room) -> Relation {
    Relation {
        owner: room.owner_id == who.user.as_str(),
        member: room.is_member(who.user.as_str()),
        sender: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLES: [Role; 3] = [Role::Customer, Role::Agent, Role::Admin];

    fn relations() -> Vec<Relation> {
        let mut out = Vec::new();
        for owner in [false, true] {
            for member in [false, true] {
                for sender in [false, true] {
                    out.push(Relation {
                        owner,
                        member,
                        sender,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn admins_may_do_everything_but_edit_anothers_words_or_be_someone_they_are_not() {
        for action in Action::ALL {
            let stranger = Relation::default();
            let admin_may = allows(action, Role::Admin, stranger);
            // A rating is the customer's own voice, as an edit is the sender's.
            let expected = !matches!(
                action,
                Action::EditMessage | Action::OwnView | Action::RateConversation
            );
            assert_eq!(admin_may, expected, "{action:?}");
        }
    }

    #[test]
    fn a_customer_acts_only_through_what_they_own_or_sent() {
        for action in Action::ALL {
            for relation in relations() {
                if allows(action, Role::Customer, relation) {
                    assert!(
                        relation.owner || relation.sender || relation.member,
                        "{action:?} {relation:?}"
                    );
                }
            }
            assert!(
                !allows(action, Role::Customer, Relation::default()),
                "{action:?}"
            );
        }
    }

    #[test]
    fn more_standing_never_takes_a_right_away() {
        for action in Action::ALL {
            for role in ROLES {
                for r in relations() {
                    if allows(action, role, r) {
                        let more = Relation {
                            owner: true,
                            member: true,
                            sender: true,
                        };
                        assert!(allows(action, role, more), "{action:?} {role:?}");
                        if role == Role::Agent {
                            assert!(
                                allows(action, Role::Admin, r)
                                    || action == Action::EditMessage
                                    || action == Action::OwnView
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_refusal_is_a_403_naming_who_may() {
        let err = ApiError::from(Refused(Action::PostNote));
        assert_eq!(err.status(), 403);
        assert_eq!(err.to_string(), "internal notes are for agents and admins");
    }
}
