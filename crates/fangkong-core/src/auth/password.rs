//! The password policy: at least 12 characters, not a common password, not the username,
//! not a run of one character or a simple sequence. No composition rules (NIST SP 800-63B,
//! which the CJIS policy follows, advises against them): length and a block list do the work.

/// Shortest acceptable password, in characters.
pub const MIN_CHARS: usize = 12;
/// Longest accepted password, in characters (argon2 would take more, but nobody types more).
pub const MAX_CHARS: usize = 128;

const COMMON: &str = include_str!("common-passwords.txt");

#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_CHARS} characters")]
    TooLong,
    #[error("the password is one of the most common passwords")]
    Common,
    #[error("the password must not contain the username")]
    ContainsUsername,
    #[error("the password is a single repeated character or a simple sequence")]
    Trivial,
}

/// Checks a new password for `username` against the policy.
pub fn check_password(password: &str, username: &str) -> Result<(), PasswordError> {
    let chars: Vec<char> = password.chars().collect();
    if chars.len() < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars.len() > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    let lower = password.to_lowercase();
    if is_common(&lower) {
        return Err(PasswordError::Common);
    }
    let user = username.to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        return Err(PasswordError::ContainsUsername);
    }
    if is_trivial(&chars) {
        return Err(PasswordError::Trivial);
    }
    Ok(())
}

fn is_common(lowercase: &str) -> bool {
    COMMON.lines().filter(|line| !line.starts_with('#')).any(|common| common == lowercase)
}

/// One repeated character, or every step +1 or every step −1 (digits wrap 9→0).
fn is_trivial(chars: &[char]) -> bool {
    let step = |a: char, b: char| -> i64 {
        let (a, b) = (a as i64, b as i64);
        if a == '9' as i64 && b == '0' as i64 {
            1
        } else if a == '0' as i64 && b == '9' as i64 {
            -1
        } else {
            b - a
        }
    };
    let steps: Vec<i64> = chars.windows(2).map(|w| step(w[0], w[1])).collect();
    steps.iter().all(|s| *s == 0) || steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str, expected: Result<(), PasswordError>) {
        assert_eq!(check_password(password, "zhang.wei"), expected, "{password:?}");
    }

    #[test]
    fn the_policy_in_examples() {
        check("correct horse battery", Ok(()));
        check("深圳治安防控体系建设方案", Ok(()));
        check("eleven char", Err(PasswordError::TooShort));
        check("短密码", Err(PasswordError::TooShort));
        check(&"x".repeat(129), Err(PasswordError::TooLong));
        check("Password1234", Err(PasswordError::Common));
        check("QWERTYUIOP123", Err(PasswordError::Common));
        check("woaini1314520", Err(PasswordError::Common));
        check("my Zhang.Wei password", Err(PasswordError::ContainsUsername));
        check("zzzzzzzzzzzzzz", Err(PasswordError::Trivial));
        check("34567890123456", Err(PasswordError::Trivial));
        check("lkjihgfedcba", Err(PasswordError::Trivial));
        check("monday-tuesday-1", Ok(()));
    }

    #[test]
    fn the_list_only_holds_passwords_the_length_rule_lets_through() {
        for line in COMMON.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line, line.to_lowercase(), "entries are lowercase: {line}");
            assert!(line.chars().count() >= MIN_CHARS, "{line:?} is refused by length already; keep the list useful");
        }
    }
}
