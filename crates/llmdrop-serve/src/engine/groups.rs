//! Which prompts share a forward pass: prompts with a common prefix run it once into a KV
//! cache and the rest as one right-padded batch on top, when that costs no more positions
//! than running each alone; requests waiting together join groups on the same prefix.

/// Most prompts run as one batch on a shared prefix.
const MAX_GROUP: usize = 64;
/// Most logits (floats) one batched pass may produce.
const MAX_BATCH_LOGITS: usize = 32 << 20;

/// A group of prompts run together: `shared` leading tokens common to all (0: run alone).
pub(super) struct Group {
    pub members: Vec<usize>,
    pub shared: usize,
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Groups prompts that share a prefix, when running the prefix once and the rest as one
/// padded batch costs no more positions than running each prompt alone. Every member keeps
/// at least one token beyond the shared prefix.
fn plan_groups(prompts: &[Vec<u32>], vocab: usize) -> Vec<Group> {
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by(|&a, &b| prompts[a].cmp(&prompts[b]));
    let mut groups: Vec<Group> = Vec::new();
    let mut cur = Group {
        members: vec![],
        shared: 0,
    };
    for &i in &order {
        if cur.members.is_empty() {
            cur.members.push(i);
            continue;
        }
        // sorted: the first and the newest member share the group's shortest prefix
        let first = &prompts[cur.members[0]];
        let min_len = cur
            .members
            .iter()
            .map(|&m| prompts[m].len())
            .chain([prompts[i].len()])
            .min()
            .unwrap_or(0);
        let shared = common_prefix(first, &prompts[i]).min(min_len.saturating_sub(1));
        let n = cur.members.len() + 1;
        let lens = cur
            .members
            .iter()
            .map(|&m| prompts[m].len())
            .chain([prompts[i].len()]);
        let alone: usize = lens.clone().sum();
        let width = lens.map(|l| l - shared).max().unwrap_or(0);
        let fits = n <= MAX_GROUP && n * width * vocab <= MAX_BATCH_LOGITS;
        if shared >= 1 && shared + n * width <= alone && fits {
            cur.members.push(i);
            cur.shared = shared;
        } else {
            groups.push(std::mem::replace(
                &mut cur,
                Group {
                    members: vec![i],
                    shared: 0,
                },
            ));
        }
    }
    if !cur.members.is_empty() {
        groups.push(cur);
    }
    groups
}

/// The groups of several requests' prompts (`sizes[j]` prompts of request j, in order in
/// one list): each request's own [`plan_groups`], then groups of different requests with
/// the same shared prefix joined into one batch while it fits. Every prompt keeps the
/// prefix split it has alone, and a row of a batch is computed alike in any batch, so a
/// request's answer does not depend on what it was run with.
pub(super) fn plan_merged(prompts: &[Vec<u32>], sizes: &[usize], vocab: usize) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    let mut start = 0;
    for &n in sizes {
        for mut g in plan_groups(&prompts[start..start + n], vocab) {
            g.members.iter_mut().for_each(|m| *m += start);
            let prefix = |g: &Group| &prompts[g.members[0]][..g.shared];
            let host = out.iter_mut().find(|h| {
                if h.shared == 0 || h.shared != g.shared || prefix(h) != prefix(&g) {
                    return false;
                }
                let members = h.members.iter().chain(&g.members);
                let width = members
                    .map(|&m| prompts[m].len() - g.shared)
                    .max()
                    .unwrap_or(0);
                let rows = h.members.len() + g.members.len();
                rows <= MAX_GROUP && rows * width * vocab <= MAX_BATCH_LOGITS
            });
            match host {
                Some(h) if g.shared >= 1 && g.members.len() > 1 => h.members.extend(g.members),
                _ => out.push(g),
            }
        }
        start += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_share_prefixes_only_when_cheaper() {
        let p = vec![
            vec![1, 2, 3, 4, 5, 6],
            vec![9, 9],
            vec![1, 2, 3, 4, 5, 7, 8],
            vec![1, 2, 3, 4, 5],
        ];
        let g = plan_groups(&p, 10);
        assert_eq!(g.len(), 2);
        let shared = g.iter().find(|g| g.members.len() == 3).unwrap();
        // the shortest member keeps one token beyond the prefix
        assert_eq!(shared.shared, 4);
        // nothing in common: alone
        assert_eq!(plan_groups(&[vec![1, 2], vec![3, 4]], 10).len(), 2);
    }

    #[test]
    fn requests_join_groups_only_with_the_same_prefix_split() {
        // request 0: two prompts on prefix [1, 2, 3]; request 1: two more on it, one alone;
        // request 2: two prompts on [1, 2] (a different split: not joined)
        let p = vec![
            vec![1, 2, 3, 4],
            vec![1, 2, 3, 5],
            vec![1, 2, 3, 6],
            vec![1, 2, 3, 7],
            vec![8, 9],
            vec![1, 2, 7],
            vec![1, 2, 8],
        ];
        let g = plan_merged(&p, &[2, 3, 2], 10);
        let mut joined: Vec<usize> = g[0].members.clone();
        joined.sort();
        assert_eq!((joined, g[0].shared), (vec![0, 1, 2, 3], 3));
        let alone: Vec<&Group> = g.iter().filter(|g| g.members == [4]).collect();
        assert_eq!(alone.len(), 1);
        let last = g.iter().find(|g| g.members.contains(&5)).unwrap();
        assert_eq!((last.members.len(), last.shared), (2, 2));
        assert_eq!(g.len(), 3);
        // each request alone plans what the merge keeps for it
        assert_eq!(plan_merged(&p[..2], &[2], 10)[0].shared, 3);
    }
}
