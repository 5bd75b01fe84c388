//! Free text that people type (names, addresses, notes, call signs): the one rule for the
//! characters it may hold.
//!
//! Besides control characters, the rule refuses the invisible format characters that change
//! how the text around them reads without showing themselves: bidirectional embeddings,
//! overrides and isolates (a name that displays as "张伟" but sorts, searches and compares as
//! something else; "Trojan Source"), and zero-width characters (two names that look alike
//! but differ). Nothing a person means to type needs them in this system's texts.

/// Whether `c` may not appear in free text. Line breaks are decided by the caller (see
/// [`hidden_char`]).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}'                 // soft hyphen: invisible unless the line breaks there
            | '\u{061C}'               // Arabic letter mark (a bidirectional mark)
            | '\u{180E}'               // Mongolian vowel separator (zero width)
            | '\u{200B}'..='\u{200F}'  // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{202A}'..='\u{202E}'  // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}'  // word joiner and invisible operators
            | '\u{2066}'..='\u{206F}'  // bidirectional isolates; deprecated format characters
            | '\u{FEFF}'               // zero-width no-break space (byte order mark)
            | '\u{FFF9}'..='\u{FFFB}'  // interlinear annotation marks
        )
}

/// The first character of `text` that free text may not hold, if any; line breaks (`\n`)
/// pass when `multiline`.
pub fn hidden_char(text: &str, multiline: bool) -> Option<char> {
    text.chars().find(|&c| is_hidden(c) && !(multiline && c == '\n'))
}

/// Whether `text` holds a character free text may not hold (see [`hidden_char`]).
pub fn has_hidden(text: &str, multiline: bool) -> bool {
    hidden_char(text, multiline).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for bad in [
            "a\u{7}b",
            "line\nbreak",
            "\u{202E}伟张",
            "张\u{202A}伟",
            "张\u{2066}伟\u{2069}",
            "张\u{200B}伟",
            "张\u{200D}伟",
            "\u{200F}张伟",
            "\u{FEFF}张伟",
            "张\u{2060}伟",
            "张\u{00AD}伟",
        ] {
            assert!(has_hidden(bad, false), "{bad:?}");
        }
        assert_eq!(hidden_char("ab\u{202E}c\u{200B}", false), Some('\u{202E}'));
    }

    #[test]
    fn ordinary_text_passes_and_notes_may_break_lines() {
        for good in ["张伟", "Zhang Wei", "园岭新村2栋 3-201", "巡逻一组（机动）", "O'Brien — ok", "١٢٣", "😀"]
        {
            assert!(!has_hidden(good, false), "{good:?}");
        }
        assert!(!has_hidden("报警人再次来电\n称已离开", true));
        assert!(has_hidden("报警人\u{202E}再次来电\n", true));
        assert!(has_hidden("tab\there", true), "only line breaks are let through");
    }
}
