//! Which tenants a runner takes: a stable shard of the fleet (by a hash of the tenant's name),
//! and the canary stage that goes first.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::tenants::FleetError;

/// One of `count` disjoint parts of a fleet: a tenant belongs to the shard its name hashes
/// to, so every runner computes the same split without talking to the others, and a tenant
/// stays in its shard when others are added or removed.
///
/// ```
/// use migrate_runtime::fleet::Shard;
///
/// let shard: Shard = "2/8".parse()?; // what `--shard 2/8` takes
/// let all = ["acme", "globex", "initech", "umbrella"];
/// let mine: Vec<_> = all.iter().filter(|name| shard.contains(name)).collect();
/// let count = (0..8)
///     .map(|i| all.iter().filter(|n| Shard::new(i, 8).unwrap().contains(n)).count())
///     .sum::<usize>();
/// assert_eq!(count, all.len()); // every tenant is in exactly one shard
/// # let _ = mine;
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count` (`0 <= index < count`).
    ///
    /// ```
    /// # use migrate_runtime::fleet::Shard;
    /// assert!(Shard::new(0, 1).is_ok());
    /// assert!(Shard::new(3, 3).is_err());
    /// ```
    pub fn new(index: u32, count: u32) -> Result<Shard, FleetError> {
        if index < count {
            Ok(Shard { index, count })
        } else {
            Err(FleetError::BadShard { index, count })
        }
    }

    /// Whether the tenant `name` is in this shard.
    ///
    /// ```
    /// # use migrate_runtime::fleet::Shard;
    /// assert!(Shard::new(0, 1)?.contains("acme"));
    /// # Ok::<(), migrate_runtime::fleet::FleetError>(())
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        // SHA-256, not std's hasher: the split must be the same on every machine and release.
        let digest = Sha256::digest(format!("migrate-runtime shard {name}"));
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(bytes) % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("`{text}` is not a shard: write INDEX/COUNT, e.g. 0/4");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index = index.trim().parse().map_err(|_| usage())?;
        let count = count.trim().parse().map_err(|_| usage())?;
        Shard::new(index, count).map_err(|error| error.to_string())
    }
}

/// The tenants that go first and must all succeed before any other starts.
///
/// ```
/// use migrate_runtime::fleet::Canary;
/// let first_five = Canary::First(5);
/// let named = Canary::Named(vec!["internal".to_owned()]);
/// # let _ = (first_five, named);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Canary {
    /// No canary stage (the default).
    #[default]
    None,
    /// The first `n` tenants of the fleet (after sharding).
    First(usize),
    /// These tenants, in this order (those outside this runner's shard are left out).
    Named(Vec<String>),
}

/// Splits the tenant positions `0..names.len()` into the canary stage and the rest, each in
/// fleet order.
pub(crate) fn stages(names: &[&str], canary: &Canary) -> (Vec<usize>, Vec<usize>) {
    let first: Vec<usize> = match canary {
        Canary::None => Vec::new(),
        Canary::First(count) => (0..(*count).min(names.len())).collect(),
        Canary::Named(wanted) => wanted
            .iter()
            .filter_map(|name| names.iter().position(|candidate| candidate == name))
            .collect(),
    };
    let rest = (0..names.len()).filter(|i| !first.contains(i)).collect();
    (first, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover() {
        let names: Vec<String> = (0..1000).map(|i| format!("tenant_{i}")).collect();
        for count in [1, 2, 3, 7] {
            let mut seen = vec![0; names.len()];
            for index in 0..count {
                let shard = Shard::new(index, count).unwrap();
                let taken = names.iter().enumerate().filter(|(_, n)| shard.contains(n));
                for (position, _) in taken {
                    seen[position] += 1;
                }
            }
            assert!(seen.iter().all(|&times| times == 1), "count {count}");
        }
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!("1/4".parse::<Shard>().unwrap(), Shard::new(1, 4).unwrap());
        assert_eq!(
            "4/4".parse::<Shard>().unwrap_err(),
            "shard 4/4 does not exist: shards are 0/N to (N-1)/N with N at least 1"
        );
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn canary_stages() {
        let names = ["a", "b", "c", "d"];
        assert_eq!(stages(&names, &Canary::First(2)), (vec![0, 1], vec![2, 3]));
        let named = Canary::Named(vec!["c".into(), "z".into()]);
        assert_eq!(stages(&names, &named), (vec![2], vec![0, 1, 3]));
    }
}
