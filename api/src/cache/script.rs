//! The cache's Lua scripts, each run by its SHA-1 and loaded on first use.

use std::sync::LazyLock;

use fred::{
    prelude::{ClientLike, FredResult, Value},
    types::{ClusterHash, CustomCommand, FromValue, scripts::Script},
};

/// A script sent by `EVALSHA`, and loaded with `SCRIPT LOAD` when Redis does not know it (first
/// use, or after a restart).
#[derive(Debug)]
pub(super) struct LuaScript {
    lua: &'static str,
    sha1: LazyLock<String>,
}

impl LuaScript {
    /// The script `lua`, named by the SHA-1 that `sha1` computes when first needed.
    pub(super) const fn new(lua: &'static str, sha1: fn() -> String) -> Self {
        Self {
            lua,
            sha1: LazyLock::new(sha1),
        }
    }

    /// Runs the script with `keys` and `args` through `redis`, which carries the caller's
    /// deadline: `EVALSHA` goes through `custom` because fred's `WithOptions` does not
    /// implement its Lua interface, which would silently drop the options.
    pub(super) async fn run<C: ClientLike, R: FromValue>(
        &self,
        redis: &C,
        keys: Vec<Value>,
        args: Vec<Value>,
    ) -> FredResult<R> {
        let evalsha = |sha: String| {
            let mut all: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            all.push(sha.into());
            all.push(keys.len().try_into().unwrap_or(Value::Null));
            all.extend(keys.iter().cloned());
            all.extend(args.iter().cloned());
            redis.custom::<R, _>(
                CustomCommand::new_static("EVALSHA", ClusterHash::FirstKey, false),
                all,
            )
        };
        match evalsha(self.sha1.clone()).await {
            Err(err) if err.details().starts_with("NOSCRIPT") => {
                let sha: String = redis
                    .custom(
                        CustomCommand::new_static("SCRIPT", ClusterHash::Random, false),
                        vec!["LOAD", self.lua],
                    )
                    .await?;
                evalsha(sha).await
            }
            reply => reply,
        }
    }
}

/// The SHA-1 `EVALSHA` names `lua` by.
pub(super) fn sha1_of(lua: &str) -> String {
    Script::from_lua(lua).sha1().to_string()
}
