//! Users, instances and monitoring flags.

use autoscaler_core::capacity::ScaleState;
use autoscaler_core::store::{
    CollectionError, Error, Instance, NewInstance, NewUser, Result, User,
};
use redb::{Database, ReadableTable};
use uuid::Uuid;

use super::tables::{
    self, Context, INSTANCE_IDS, INSTANCE_SEQUENCE_KEY, INSTANCES, MONITORED, OWNER_INSTANCES,
    USER_EMAILS, USERS, decode, encode,
};

pub(super) fn create_user(db: &Database, new: NewUser) -> Result<User> {
    tables::write(db, |txn| {
        let mut emails = txn
            .open_table(USER_EMAILS)
            .context("opening table user_emails")?;
        if emails
            .get(new.email.as_str())
            .context("reading table user_emails")?
            .is_some()
        {
            return Err(Error::Conflict {
                entity: "user",
                key: new.email,
            });
        }
        let user = User {
            id: Uuid::new_v4(),
            email: new.email,
            password_hash: new.password_hash,
            created_at: tables::now(),
        };
        emails
            .insert(user.email.as_str(), user.id.as_u128())
            .context("writing table user_emails")?;
        let mut users = txn.open_table(USERS).context("opening table users")?;
        users
            .insert(user.id.as_u128(), encode("users", &user)?.as_slice())
            .context("writing table users")?;
        Ok(user)
    })
}

pub(super) fn user_by_email(db: &Database, email: &str) -> Result<Option<User>> {
    let txn = tables::read(db)?;
    let emails = txn
        .open_table(USER_EMAILS)
        .context("opening table user_emails")?;
    let Some(id) = emails.get(email).context("reading table user_emails")? else {
        return Ok(None);
    };
    let users = txn.open_table(USERS).context("opening table users")?;
    load_user(&users, id.value())
}

pub(super) fn user(db: &Database, id: Uuid) -> Result<Option<User>> {
    let txn = tables::read(db)?;
    let users = txn.open_table(USERS).context("opening table users")?;
    load_user(&users, id.as_u128())
}

fn load_user(users: &impl ReadableTable<u128, &'static [u8]>, id: u128) -> Result<Option<User>> {
    users
        .get(id)
        .context("reading table users")?
        .map(|bytes| decode("users", bytes.value()))
        .transpose()
}

pub(super) fn create_instance(db: &Database, new: NewInstance) -> Result<Instance> {
    tables::write(db, |txn| {
        let users = txn.open_table(USERS).context("opening table users")?;
        if users
            .get(new.owner_id.as_u128())
            .context("reading table users")?
            .is_none()
        {
            return Err(Error::NotFound {
                entity: "user",
                key: new.owner_id.to_string(),
            });
        }
        let mut ids = txn
            .open_table(INSTANCE_IDS)
            .context("opening table instance_ids")?;
        if ids
            .get(new.instance_id.as_str())
            .context("reading table instance_ids")?
            .is_some()
        {
            return Err(Error::Conflict {
                entity: "instance",
                key: new.instance_id,
            });
        }

        let instance = Instance {
            id: Uuid::new_v4(),
            owner_id: new.owner_id,
            instance_id: new.instance_id,
            instance_type: new.instance_type,
            region: new.region,
            is_mock: new.is_mock,
            is_monitoring: false,
            scale: ScaleState::initial(),
            created_at: tables::now(),
            last_collection_error: None,
        };
        let id = instance.id.as_u128();
        ids.insert(instance.instance_id.as_str(), id)
            .context("writing table instance_ids")?;
        let sequence = tables::next_sequence(txn, INSTANCE_SEQUENCE_KEY)?;
        let mut by_owner = txn
            .open_table(OWNER_INSTANCES)
            .context("opening table owner_instances")?;
        by_owner
            .insert((instance.owner_id.as_u128(), sequence), id)
            .context("writing table owner_instances")?;
        store_instance(txn, &instance)?;
        Ok(instance)
    })
}

pub(super) fn instance(db: &Database, instance_id: &str) -> Result<Option<Instance>> {
    let txn = tables::read(db)?;
    let ids = txn
        .open_table(INSTANCE_IDS)
        .context("opening table instance_ids")?;
    let Some(id) = ids.get(instance_id).context("reading table instance_ids")? else {
        return Ok(None);
    };
    let instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    load_instance(&instances, id.value())
}

pub(super) fn instances_by_owner(db: &Database, owner_id: Uuid) -> Result<Vec<Instance>> {
    let txn = tables::read(db)?;
    let by_owner = txn
        .open_table(OWNER_INSTANCES)
        .context("opening table owner_instances")?;
    let instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    let owner = owner_id.as_u128();
    let mut found = Vec::new();
    for entry in by_owner
        .range((owner, u64::MIN)..=(owner, u64::MAX))
        .context("reading table owner_instances")?
    {
        let (_, id) = entry.context("reading table owner_instances")?;
        found.push(require_instance(&instances, id.value())?);
    }
    Ok(found)
}

pub(super) fn set_monitoring(
    db: &Database,
    instance_id: &str,
    monitoring: bool,
) -> Result<Instance> {
    tables::write(db, |txn| {
        let ids = txn
            .open_table(INSTANCE_IDS)
            .context("opening table instance_ids")?;
        let id = ids
            .get(instance_id)
            .context("reading table instance_ids")?
            .map(|id| id.value())
            .ok_or_else(|| Error::NotFound {
                entity: "instance",
                key: instance_id.to_owned(),
            })?;
        let mut instance = {
            let instances = txn
                .open_table(INSTANCES)
                .context("opening table instances")?;
            require_instance(&instances, id)?
        };
        if instance.is_monitoring == monitoring {
            return Err(Error::Conflict {
                entity: "monitoring",
                key: instance_id.to_owned(),
            });
        }
        instance.is_monitoring = monitoring;
        store_instance(txn, &instance)?;

        let mut monitored = txn
            .open_table(MONITORED)
            .context("opening table monitored")?;
        if monitoring {
            monitored
                .insert(id, ())
                .context("writing table monitored")?;
        } else {
            monitored.remove(id).context("writing table monitored")?;
        }
        Ok(instance)
    })
}

pub(super) fn monitored_instances(db: &Database) -> Result<Vec<Instance>> {
    let txn = tables::read(db)?;
    let monitored = txn
        .open_table(MONITORED)
        .context("opening table monitored")?;
    let instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    let mut found = Vec::new();
    for entry in monitored.iter().context("reading table monitored")? {
        let (id, _) = entry.context("reading table monitored")?;
        found.push(require_instance(&instances, id.value())?);
    }
    Ok(found)
}

pub(super) fn set_collection_error(
    db: &Database,
    id: Uuid,
    error: Option<CollectionError>,
) -> Result<()> {
    tables::write(db, |txn| {
        let mut instance = {
            let instances = txn
                .open_table(INSTANCES)
                .context("opening table instances")?;
            load_instance(&instances, id.as_u128())?.ok_or_else(|| Error::NotFound {
                entity: "instance",
                key: id.to_string(),
            })?
        };
        instance.last_collection_error = error.map(|error| CollectionError {
            at: tables::truncate_to_micros(error.at),
            ..error
        });
        store_instance(txn, &instance)
    })
}

/// Reads the instance stored under the internal id `id`.
pub(super) fn load_instance(
    instances: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Option<Instance>> {
    instances
        .get(id)
        .context("reading table instances")?
        .map(|bytes| decode("instances", bytes.value()))
        .transpose()
}

/// Reads an instance that an index names; its absence means the index and the table disagree.
fn require_instance(
    instances: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Instance> {
    load_instance(instances, id)?.ok_or_else(|| Error::Backend {
        message: format!(
            "corrupt database: an index names instance {} but table instances lacks it",
            Uuid::from_u128(id)
        ),
        source: None,
    })
}

/// Writes `instance` over its stored version.
pub(super) fn store_instance(txn: &redb::WriteTransaction, instance: &Instance) -> Result<()> {
    let mut instances = txn
        .open_table(INSTANCES)
        .context("opening table instances")?;
    instances
        .insert(
            instance.id.as_u128(),
            encode("instances", instance)?.as_slice(),
        )
        .context("writing table instances")?;
    Ok(())
}
