//! Roles: create, edit, delete, with the hierarchy rule (nobody manages a role at or above their
//! own highest) and the escalation rule (nobody grants a permission they lack).

use serde::{Deserialize, Serialize};

use super::access::GuildAccess;
use super::accounts::Caller;
use super::visibility::{Sight, Standing};
use crate::Chat;
use crate::error::{Error, Result};
use crate::events::{Audience, Dispatch};
use crate::id::Id;
use crate::model::{AuditAction, Role};
use crate::permissions::{Permissions, can_manage_role};
use crate::service::audit::{change, changed};
use crate::validate;

#[derive(Debug, Default, Deserialize)]
pub struct RoleBody {
    pub name: Option<String>,
    pub permissions: Option<Permissions>,
    pub color: Option<u32>,
    pub hoist: Option<bool>,
    pub mentionable: Option<bool>,
    pub position: Option<i32>,
}

#[derive(Debug, Serialize)]
struct RoleEvent<'a> {
    guild_id: Id,
    role: &'a Role,
}

#[derive(Debug, Serialize)]
struct RoleDeleted {
    guild_id: Id,
    role_id: Id,
}

fn check_grant(access: &GuildAccess, perms: Permissions) -> Result<()> {
    let mine = access.base();
    if mine.contains(Permissions::ADMINISTRATOR) || mine.contains(perms) {
        Ok(())
    } else {
        Err(Error::Forbidden("cannot grant permissions you do not have"))
    }
}

impl Chat {
    pub async fn roles(&self, caller: &Caller, guild_id: Id) -> Result<Vec<Role>> {
        Ok(self.guild_access(caller.user.id, guild_id).await?.roles)
    }

    pub async fn create_role(&self, caller: &Caller, guild_id: Id, body: RoleBody) -> Result<Role> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_ROLES)?;
        let permissions = body.permissions.unwrap_or_default();
        check_grant(&access, permissions)?;
        // New roles go just above @everyone (Discord's rule): the others move up by one.
        for mut r in access.roles.iter().filter(|r| r.id != guild_id).cloned() {
            r.position = r.position.saturating_add(1);
            self.store.put_role(&r).await?;
        }
        let role = Role {
            id: self.ids.next(),
            guild_id,
            name: validate::name("name", body.name.as_deref().unwrap_or("new role"), 100)?,
            permissions,
            position: 1,
            color: body.color.unwrap_or(0) & 0xff_ffff,
            hoist: body.hoist.unwrap_or(false),
            mentionable: body.mentionable.unwrap_or(false),
        };
        self.store.put_role(&role).await?;
        self.publish(Dispatch::new(
            "GUILD_ROLE_CREATE",
            &RoleEvent { guild_id, role: &role },
            Audience::Guild(guild_id),
        ));
        let changes = vec![change("name", (), &role.name), change("permissions", (), role.permissions)];
        self.audit(caller, guild_id, AuditAction::RoleCreate, Some(role.id), changes).await;
        Ok(role)
    }

    pub async fn update_role(&self, caller: &Caller, guild_id: Id, role_id: Id, body: RoleBody) -> Result<Role> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_ROLES)?;
        let mut role = access.role(role_id).cloned().ok_or(Error::NotFound("role"))?;
        let before = role.clone();
        let now = chrono::Utc::now();
        if role.id != guild_id && !can_manage_role(access.ctx(), &access.member, &role, now) {
            return Err(Error::Forbidden("cannot manage a role at or above your highest role"));
        }
        if let Some(name) = body.name {
            if role.id == guild_id {
                return Err(Error::field("name", "@everyone cannot be renamed"));
            }
            role.name = validate::name("name", &name, 100)?;
        }
        let permissions_changed = body.permissions.is_some_and(|p| p != role.permissions);
        if let Some(p) = body.permissions {
            check_grant(&access, p ^ role.permissions)?;
            role.permissions = p;
        }
        if let Some(c) = body.color {
            role.color = c & 0xff_ffff;
        }
        if let Some(h) = body.hoist {
            role.hoist = h;
        }
        if let Some(m) = body.mentionable {
            role.mentionable = m;
        }
        if let Some(pos) = body.position {
            if role.id == guild_id {
                return Err(Error::field("position", "@everyone stays at position 0"));
            }
            let pos = pos.max(1);
            if !access.is_owner() && i64::from(pos) >= access.ctx().top_position(&access.member) {
                return Err(Error::Forbidden("cannot move a role to or above your highest role"));
            }
            role.position = pos;
        }
        self.store.put_role(&role).await?;
        self.publish(Dispatch::new(
            "GUILD_ROLE_UPDATE",
            &RoleEvent { guild_id, role: &role },
            Audience::Guild(guild_id),
        ));
        if permissions_changed {
            let after: Vec<Role> =
                access.roles.iter().map(|r| if r.id == role.id { role.clone() } else { r.clone() }).collect();
            let sight =
                |roles| Sight { guild_id, owner_id: access.guild.owner_id, roles, standing: Standing::AsFollowed };
            self.announce_guild_sight_change(sight(&access.roles), sight(&after), None).await?;
        }
        let changes: Vec<_> = [
            changed("name", &before.name, &role.name),
            changed("permissions", &before.permissions, &role.permissions),
            changed("color", &before.color, &role.color),
            changed("hoist", &before.hoist, &role.hoist),
            changed("mentionable", &before.mentionable, &role.mentionable),
            changed("position", &before.position, &role.position),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !changes.is_empty() {
            self.audit(caller, guild_id, AuditAction::RoleUpdate, Some(role_id), changes).await;
        }
        Ok(role)
    }

    pub async fn delete_role(&self, caller: &Caller, guild_id: Id, role_id: Id) -> Result<()> {
        let access = self.guild_access(caller.user.id, guild_id).await?;
        access.require(Permissions::MANAGE_ROLES)?;
        let role = access.role(role_id).cloned().ok_or(Error::NotFound("role"))?;
        if role.id == guild_id {
            return Err(Error::Forbidden("@everyone cannot be deleted"));
        }
        if !can_manage_role(access.ctx(), &access.member, &role, chrono::Utc::now()) {
            return Err(Error::Forbidden("cannot manage a role at or above your highest role"));
        }
        // The store drops the role's overwrites with it: keep the channels as they were.
        let channels_before = self.store.guild_channels(guild_id).await?;
        self.store.delete_role(guild_id, role_id).await?;
        self.publish(Dispatch::new("GUILD_ROLE_DELETE", &RoleDeleted { guild_id, role_id }, Audience::Guild(guild_id)));
        // Channels its holders saw through it (or that its overwrites hid) change sight now.
        let channels_after = self.store.guild_channels(guild_id).await?;
        let pairs: Vec<_> = channels_before
            .into_iter()
            .filter_map(|b| channels_after.iter().find(|a| a.id == b.id).map(|a| (b, a.clone())))
            .collect();
        let after: Vec<Role> = access.roles.iter().filter(|r| r.id != role_id).cloned().collect();
        let owner_id = access.guild.owner_id;
        self.announce_sight_change(
            Sight { guild_id, owner_id, roles: &access.roles, standing: Standing::AsFollowed },
            Sight { guild_id, owner_id, roles: &after, standing: Standing::WithoutRole(role_id) },
            &pairs,
            false,
            None,
        )
        .await;
        // Members who held it lose it in the hub's view too (every node's), after the sight change.
        self.publish(
            Dispatch::new("GUILD_ROLE_DELETE", &RoleDeleted { guild_id, role_id }, Audience::Users(vec![]))
                .with_effect(crate::events::Effect::RoleRemove { guild_id, role_id }),
        );
        let changes = vec![change("name", &role.name, ()), change("permissions", role.permissions, ())];
        self.audit(caller, guild_id, AuditAction::RoleDelete, Some(role_id), changes).await;
        Ok(())
    }
}
