//! PostgreSQL `NOTIFY`: how a committed change tells other instances. The
//! payload is `<sequence>:<workspace id>`, several joined with `,` (workspace
//! ids never contain a comma); it is written and read only here. The one
//! applier (`store::apply`) sends it inside the writing transaction, so
//! PostgreSQL delivers it only on commit.

/// The payload saying that `workspace_id`'s ledger reached `sequence`.
pub fn payload(sequence: i64, workspace_id: &str) -> String {
    format!("{sequence}:{workspace_id}")
}

/// The (sequence, workspace id) pairs of a received payload; malformed
/// items are skipped (the ledger stays the source of truth).
pub fn parse(payload: &str) -> impl Iterator<Item = (i64, &str)> {
    payload.split(',').filter_map(|item| {
        let (sequence, workspace_id) = item.split_once(':')?;
        Some((sequence.parse().ok()?, workspace_id))
    })
}

/// Longest NOTIFY payload sent (PostgreSQL's limit is 8,000 bytes).
const NOTIFY_PAYLOAD_MAX_BYTES: usize = 7_000;

/// Payloads joined with `,` into as few as fit PostgreSQL's limit.
pub fn chunks(payloads: Vec<String>) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    for payload in payloads {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() + 1 + payload.len() <= NOTIFY_PAYLOAD_MAX_BYTES => {
                chunk.push(',');
                chunk.push_str(&payload);
            }
            _ => chunks.push(payload),
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_joined_into_chunks_parse_back_whole() {
        let written: Vec<(i64, String)> = (1..=2_000).map(|n| (n * 7, format!("ws-{n}"))).collect();
        let chunks = chunks(
            written
                .iter()
                .map(|(sequence, workspace)| payload(*sequence, workspace))
                .collect(),
        );
        assert!(chunks.len() > 1, "2,000 payloads need several notifications");
        assert!(chunks.iter().all(|chunk| chunk.len() <= NOTIFY_PAYLOAD_MAX_BYTES));
        let read: Vec<(i64, String)> = chunks
            .iter()
            .flat_map(|chunk| parse(chunk).map(|(sequence, workspace)| (sequence, workspace.to_owned())))
            .collect();
        assert_eq!(read, written);
    }

    #[test]
    fn malformed_items_are_skipped() {
        assert_eq!(
            parse("3:ws-a,nonsense,x:ws-b,4:ws-c").collect::<Vec<_>>(),
            vec![(3, "ws-a"), (4, "ws-c")]
        );
    }
}
