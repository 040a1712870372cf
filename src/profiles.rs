//! The profile `GET /passport/me` answers with, kept per process for at most a second.
//!
//! Identify never reads the user table (SPEC §5); `/passport/me` then needs the
//! profile, and without this cache every call would be a query of the user table,
//! the very cost the original design paid on every request. A profile changes only
//! when its user logs in (`last_login`); a login through this process forgets the
//! cached copy at once, a login through another process shows within `FRESH_FOR`,
//! the same bound SPEC §5 sets for changes made elsewhere. Nothing here decides
//! access: identify has already checked the session, and disabling a user or
//! changing a password ends the sessions, so a cached profile never lets anyone in.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::store::{StoreError, UserStore};

/// The longest a profile served from the cache can be behind the user table.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Profiles kept at most (a few hundred bytes each); beyond it the least used go.
const CAPACITY: u64 = 100_000;

/// The `data` of `GET /passport/me`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub user_id: i64,
    pub mobile: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub last_login: Option<String>,
}

/// A profile as the JSON `/passport/me` sends: serialized once per load, shared by
/// every answer until it expires.
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct ProfileJson(Arc<RawValue>);

#[derive(Debug)]
enum LoadError {
    Missing,
    Store(StoreError),
    Encode(serde_json::Error),
}

/// What is kept of a user: the profile as sent, and the roles forward auth checks.
#[derive(Clone)]
struct Entry {
    json: ProfileJson,
    roles: Arc<[String]>,
}

pub struct Profiles {
    cache: Cache<i64, Entry>,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles {
            cache: Cache::builder().max_capacity(CAPACITY).time_to_live(FRESH_FOR).build(),
        }
    }
}

impl Profiles {
    /// The user's profile: from the cache, or read once from the user table however
    /// many requests ask for it at the same moment.
    pub async fn get(&self, users: &dyn UserStore, user_id: i64) -> Result<ProfileJson, ApiError> {
        Ok(self.entry(users, user_id).await?.json)
    }

    /// The user's roles, as fresh as the profile (forward auth's `?role=`).
    pub async fn roles(&self, users: &dyn UserStore, user_id: i64) -> Result<Arc<[String]>, ApiError> {
        Ok(self.entry(users, user_id).await?.roles)
    }

    async fn entry(&self, users: &dyn UserStore, user_id: i64) -> Result<Entry, ApiError> {
        let load = async {
            let u = users.find_by_id(user_id).await.map_err(LoadError::Store)?;
            let u = u.ok_or(LoadError::Missing)?;
            let roles: Arc<[String]> = u.roles.clone().into();
            let profile = Profile {
                user_id: u.user_id,
                mobile: u.mobile,
                roles: u.roles,
                created_at: crate::clock::rfc3339(u.created_at),
                last_login: u.last_login.map(crate::clock::rfc3339),
            };
            let json = serde_json::value::to_raw_value(&profile).map_err(LoadError::Encode)?;
            let json = ProfileJson(Arc::from(json));
            Ok::<_, LoadError>(Entry { json, roles })
        };
        self.cache.try_get_with(user_id, load).await.map_err(|e| match &*e {
            LoadError::Missing => ApiError::NotFound,
            LoadError::Store(StoreError::Unavailable(why)) => ApiError::StoreUnavailable(why.clone()),
            LoadError::Store(other) => ApiError::Internal(anyhow::anyhow!("reading a profile: {other}")),
            LoadError::Encode(e) => ApiError::Internal(anyhow::anyhow!("encoding a profile: {e}")),
        })
    }

    /// Drops the cached copy after a change to the user made through this process.
    pub async fn forget(&self, user_id: i64) {
        self.cache.invalidate(&user_id).await;
    }
}
