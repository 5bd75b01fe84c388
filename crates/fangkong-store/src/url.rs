//! The `--db` URL: `sqlite://PATH` (relative or absolute; `sqlite:///abs/path` also works)
//! or `postgres://user@host:port/database` (`postgresql://` too, with any libpq-style
//! parameters tokio-postgres understands, and `pool_max_size=N`: the connections the store
//! may open, 16 unless given).

use std::path::PathBuf;

use crate::StoreError;

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum DbUrl {
    Sqlite { path: PathBuf },
    Postgres { url: String },
}

impl DbUrl {
    pub fn parse(url: &str) -> Result<DbUrl, StoreError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if rest.is_empty() {
                return Err(StoreError::InvalidUrl("sqlite:// needs a file path, e.g. sqlite://fangkong.db".into()));
            }
            if rest.starts_with(":memory:") || rest.contains('?') {
                return Err(StoreError::InvalidUrl(format!(
                    "{url:?}: give a plain file path (in-memory databases and URL options are not supported)"
                )));
            }
            return Ok(DbUrl::Sqlite { path: PathBuf::from(rest) });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Parse now so that a malformed URL fails before any connection attempt (our own
            // `pool_max_size` taken out first: tokio-postgres does not know it).
            let (plain, _) = crate::postgres::pool_size_of(url)
                .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact(url))))?;
            plain
                .parse::<tokio_postgres::Config>()
                .map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact(url))))?;
            return Ok(DbUrl::Postgres { url: url.to_string() });
        }
        let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
        Err(StoreError::InvalidUrl(format!(
            "unsupported database {scheme:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
        )))
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            let hidden = if credentials.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Result<DbUrl, &str>) {
        match (DbUrl::parse(url), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{url}"),
            (Err(got), Err(fragment)) => {
                assert!(got.to_string().contains(fragment), "{url}: error {got:?} should mention {fragment:?}")
            }
            (got, want) => panic!("{url}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn urls_are_recognised_or_refused_with_a_reason() {
        check("sqlite://fangkong.db", Ok(DbUrl::Sqlite { path: "fangkong.db".into() }));
        check("sqlite:///var/lib/fk.db", Ok(DbUrl::Sqlite { path: "/var/lib/fk.db".into() }));
        check("sqlite:data/fk.db", Ok(DbUrl::Sqlite { path: "data/fk.db".into() }));
        check(
            "postgres://postgres@127.0.0.1:5432/test",
            Ok(DbUrl::Postgres { url: "postgres://postgres@127.0.0.1:5432/test".into() }),
        );
        check("sqlite://", Err("needs a file path"));
        check("sqlite::memory:", Err("plain file path"));
        check("mysql://root@localhost/db", Err("unsupported database \"mysql\""));
        check("fangkong.db", Err("unsupported database"));
        check("postgres://u@h:notaport/db", Err("invalid database URL"));
        // The pool's size is ours to read; the URL keeps it for the store.
        let pooled = "postgres://postgres@127.0.0.1:5432/test?pool_max_size=64";
        check(pooled, Ok(DbUrl::Postgres { url: pooled.into() }));
        check("postgres://postgres@127.0.0.1:5432/test?pool_max_size=0", Err("pool_max_size=0"));
    }

    #[test]
    fn passwords_never_appear_in_messages() {
        assert_eq!(redact("postgres://fk:s3cret@db:5432/fk"), "postgres://fk:***@db:5432/fk");
        assert_eq!(redact("postgres://fk@db/fk"), "postgres://fk@db/fk");
        let error = DbUrl::parse("postgres://fk:s3cret@db:99999/fk").unwrap_err().to_string();
        assert!(!error.contains("s3cret"), "{error}");
    }
}
