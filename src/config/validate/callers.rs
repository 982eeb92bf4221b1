//! The `[[caller]]` sections: static keys bound to one grant each.

use super::super::values::one_secret;
use super::*;

pub(super) fn callers(
    raw: Vec<FileCaller>,
    apps: &[App],
    env: &dyn Env,
) -> Result<Vec<Caller>, ConfigError> {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut callers: Vec<Caller> = Vec::with_capacity(raw.len());
    for (i, raw) in raw.into_iter().enumerate() {
        let prefix = format!("caller[{i}]");
        let source = match raw.key_file {
            Some(_) => "key_file",
            None => "key_env",
        };
        let caller = caller(&prefix, raw, apps, env)?;
        if let Some(first) = names.insert(caller.name.clone(), i) {
            return Err(ConfigError::Duplicate {
                key: format!("{prefix}.name"),
                value: caller.name,
                first: format!("caller[{first}]"),
            });
        }
        // Keys select the grant, so two callers sharing one would be indistinguishable.
        if let Some(first) = callers.iter().position(|c| c.key == caller.key) {
            return Err(ConfigError::DuplicateCallerKey {
                key: format!("{prefix}.{source}"),
                first: format!("caller[{first}]"),
            });
        }
        callers.push(caller);
    }
    Ok(callers)
}

fn caller(
    prefix: &str,
    raw: FileCaller,
    apps: &[App],
    env: &dyn Env,
) -> Result<Caller, ConfigError> {
    let name = required(prefix, "name", raw.name)?;
    let key = one_secret(
        env,
        prefix,
        ("key_env", raw.key_env.as_deref()),
        ("key_file", raw.key_file.as_deref()),
    )?;
    let grant = raw.grant.ok_or_else(|| ConfigError::Missing {
        key: format!("{prefix}.grant"),
        why: "required; set grant = { client_id = \"…\", account_id = \"…\" } or user_id"
            .to_owned(),
    })?;
    let grant = grant_key(&format!("{prefix}.grant"), grant, apps)?;
    let weight = weight(&format!("{prefix}.weight"), raw.weight)?;
    Ok(Caller {
        name,
        key,
        grant,
        weight,
    })
}

fn grant_key(prefix: &str, raw: FileGrant, apps: &[App]) -> Result<GrantKey, ConfigError> {
    let client_id = required(prefix, "client_id", raw.client_id)?;
    if !apps.iter().any(|a| a.client_id == client_id) {
        return Err(ConfigError::UnknownApp {
            key: format!("{prefix}.client_id"),
            client_id,
        });
    }
    let subject = match (raw.account_id, raw.user_id) {
        (Some(id), None) => Subject::Account(nonempty(prefix, "account_id", id)?),
        (None, Some(id)) => Subject::User(nonempty(prefix, "user_id", id)?),
        (Some(_), Some(_)) => {
            return Err(ConfigError::Conflict {
                key: format!("{prefix}.user_id"),
                other: format!("{prefix}.account_id"),
            })
        }
        (None, None) => {
            return Err(ConfigError::Missing {
                key: format!("{prefix}.account_id"),
                why: "required; set account_id (Server-to-Server) or user_id".to_owned(),
            })
        }
    };
    Ok(GrantKey::new(client_id, subject))
}
