//! Synthetic names and identity numbers.
//!
//! Surnames are the most common Chinese surnames (by the 2020 household-registration
//! statistics' ranking, roughly weighted); given names are one or two characters from a
//! list of common ones. Identity numbers follow GB 11643-1999 — region (6), birth date (8),
//! sequence (3, odd for men), check digit (ISO 7064 MOD 11-2) — with region codes no real
//! person has: prefecture `99` of a province (`{province}9901`…), or Shenzhen county `9x`
//! (`44039x`) for local hukou, none of which GB/T 2260 assigns.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

const SURNAMES: &[(&str, u32)] = &[
    ("王", 72),
    ("李", 70),
    ("张", 68),
    ("刘", 55),
    ("陈", 54),
    ("杨", 47),
    ("黄", 33),
    ("赵", 28),
    ("吴", 27),
    ("周", 26),
    ("徐", 20),
    ("孙", 19),
    ("马", 18),
    ("朱", 17),
    ("胡", 16),
    ("郭", 15),
    ("何", 15),
    ("林", 14),
    ("罗", 14),
    ("高", 13),
    ("郑", 12),
    ("梁", 12),
    ("谢", 10),
    ("宋", 9),
    ("唐", 9),
    ("许", 9),
    ("韩", 8),
    ("邓", 8),
    ("冯", 8),
    ("曹", 8),
    ("彭", 7),
    ("曾", 7),
    ("肖", 7),
    ("田", 6),
    ("董", 6),
    ("潘", 6),
    ("袁", 6),
    ("蔡", 6),
    ("蒋", 6),
    ("余", 6),
    ("于", 5),
    ("杜", 5),
    ("叶", 5),
    ("程", 5),
    ("魏", 5),
    ("苏", 5),
    ("吕", 5),
    ("丁", 5),
    ("任", 4),
    ("卢", 4),
    ("姚", 4),
    ("沈", 4),
    ("钟", 4),
    ("姜", 4),
    ("崔", 4),
    ("谭", 4),
];

const GIVEN_MALE: &[&str] = &[
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "鑫", "波", "斌",
    "宇", "浩", "凯", "健", "俊", "帆", "帅", "旭", "宁", "龙", "林", "峰", "建", "国", "志", "文", "海", "东", "晨",
    "博", "阳",
];

const GIVEN_FEMALE: &[&str] = &[
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "秀", "玲", "桂", "婷", "雪", "琳", "颖", "倩", "慧", "洁", "佳",
    "欣", "梅", "兰", "晶", "燕", "红", "萍", "莉", "月", "璐", "瑶", "悦", "彤", "雨", "思", "怡", "琪", "丹", "薇",
    "蓉", "华",
];

/// Provinces people in Shenzhen most often come from (Guangdong, Hunan, Guangxi, Hubei,
/// Jiangxi, Henan, Sichuan, Fujian, Chongqing, Guizhou), as province codes.
const ORIGIN_PROVINCES: &[(&str, u32)] =
    &[("44", 30), ("43", 16), ("45", 10), ("42", 9), ("36", 8), ("41", 8), ("51", 6), ("35", 5), ("50", 4), ("52", 4)];

fn weighted<'a>(rng: &mut ChaCha8Rng, items: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (item, weight) in items {
        if pick < *weight {
            return item;
        }
        pick -= weight;
    }
    items[0].0
}

pub fn name(rng: &mut ChaCha8Rng, male: bool) -> String {
    let given = if male { GIVEN_MALE } else { GIVEN_FEMALE };
    let mut name = weighted(rng, SURNAMES).to_string();
    name.push_str(given[rng.random_range(0..given.len())]);
    if rng.random::<f64>() < 0.7 {
        name.push_str(given[rng.random_range(0..given.len())]);
    }
    name
}

/// `(year, month, day)` of a Unix day number (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The GB 11643 check character of the first 17 digits.
pub fn check_digit(first17: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
    let sum: u32 = first17.chars().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap_or(0) * w).sum();
    CHECK[(sum % 11) as usize]
}

/// A synthetic identity number for someone born on `birth_day` (Unix days).
pub fn id_number(rng: &mut ChaCha8Rng, local: bool, birth_day: i64, male: bool) -> String {
    let region = if local {
        format!("44039{}", rng.random_range(0..10))
    } else {
        format!("{}99{:02}", weighted(rng, ORIGIN_PROVINCES), rng.random_range(1..30))
    };
    let (year, month, day) = civil_from_days(birth_day);
    let sequence = rng.random_range(0..500u32) * 2 + u32::from(male);
    let first17 = format!("{region}{year:04}{month:02}{day:02}{sequence:03}");
    let check = check_digit(&first17);
    format!("{first17}{check}")
}

const SHOP_WORDS: &[&str] = &[
    "鑫", "隆", "兴", "盛", "福", "顺", "发", "达", "华", "金", "宝", "利", "源", "丰", "泰", "安", "恒", "信", "诚",
    "佳", "美", "新", "永", "鹏", "旺", "汇", "通", "和",
];

pub fn shop_name(rng: &mut ChaCha8Rng) -> String {
    (0..2).map(|_| SHOP_WORDS[rng.random_range(0..SHOP_WORDS.len())]).collect()
}

pub fn hotel_name(rng: &mut ChaCha8Rng) -> String {
    const PREFIXES: &[&str] = &["如家", "锦江", "城市", "海景", "阳光", "好客", "温馨", "商旅", "家和", "悦来"];
    format!("{}{}", PREFIXES[rng.random_range(0..PREFIXES.len())], shop_name(rng))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn civil_dates_and_check_digits_match_known_values() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        // The GB 11643 standard's own example: 11010519491231002X.
        assert_eq!(check_digit("11010519491231002"), 'X');
        // And another published example: 440524188001010014.
        assert_eq!(check_digit("44052418800101001"), '4');
    }

    #[test]
    fn identity_numbers_are_well_formed_and_never_use_assigned_regions() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for local in [true, false] {
            for _ in 0..1_000 {
                let male = rng.random::<bool>();
                let number = id_number(&mut rng, local, 9_000, male);
                assert_eq!(number.len(), 18);
                assert_eq!(number.chars().last(), Some(check_digit(&number[..17])));
                assert_eq!(&number[6..14], "19940823");
                let sequence: u32 = number[14..17].parse().unwrap();
                assert_eq!(sequence % 2 == 1, male, "odd sequence for men");
                if local {
                    assert_eq!(&number[..5], "44039");
                } else {
                    assert_eq!(&number[2..4], "99", "prefecture 99 is unassigned: {number}");
                }
            }
        }
    }
}
