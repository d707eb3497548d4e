use std::fmt;

/// The tenant used when a request names none (multi-tenancy off), as Loki's `fake`.
pub const DEFAULT_TENANT: &str = "default";

/// A validated tenant id: safe to use as one object-store path segment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TenantIdError {
    #[error("tenant id is empty")]
    Empty,
    #[error("tenant id is longer than 150 bytes")]
    TooLong,
    #[error("tenant id must not be '.' or '..'")]
    Dots,
    #[error(
        "tenant id contains the unsupported character {0:?}; allowed: letters, digits and !-_.*'()"
    )]
    BadChar(char),
}

impl TenantId {
    /// Validates `id` with Loki's and Mimir's rules: at most 150 bytes of `[A-Za-z0-9!-_.*'()]`.
    pub fn new(id: &str) -> Result<Self, TenantIdError> {
        if id.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if id.len() > 150 {
            return Err(TenantIdError::TooLong);
        }
        if id == "." || id == ".." {
            return Err(TenantIdError::Dots);
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)))
        {
            return Err(TenantIdError::BadChar(bad));
        }
        Ok(Self(id.to_string()))
    }

    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_loki_rules() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(TenantId::new(".."), Err(TenantIdError::Dots));
        assert_eq!(TenantId::new("a/b"), Err(TenantIdError::BadChar('/')));
        assert_eq!(TenantId::new(&"x".repeat(151)), Err(TenantIdError::TooLong));
    }
}
