//! The reclaim station's durable receipt outbox, like the report outbox: a receipt is written to
//! disk (fsynced) before it is sent and removed only after the service acknowledged it, so an
//! outage or a restart between wiping a key and telling the service loses nothing. The service
//! records a receipt sent again once (it is idempotent by directive id), so resending is safe.

use std::fs;
use std::path::PathBuf;

use keywarden_protocol::{ReclaimReceipt, ReclaimReceiptAck};

use crate::error::{Error, Result};
use crate::outbox::Outbox;
use crate::Agent;

/// A folder of receipts waiting for the service's acknowledgement, one JSON file each.
#[derive(Debug, Clone)]
pub struct ReceiptOutbox {
    /// Listing, removal and setting aside are the report outbox's.
    queue: Outbox,
}

/// What sending the receipts achieved.
#[derive(Debug, Clone, Default)]
pub struct SentReceipts {
    /// Receipts the service acknowledged now.
    pub acked: Vec<ReclaimReceiptAck>,
    /// Receipts the service refused for good (moved to `rejected/`), with the reason.
    pub rejected: Vec<(String, String)>,
    /// Receipts still waiting.
    pub pending: usize,
    /// Why sending stopped early (the service unreachable or failing), if it did.
    pub stopped_by: Option<String>,
}

impl ReceiptOutbox {
    /// The receipt outbox of the agent's data folder.
    pub fn of(agent: &Agent) -> Self {
        ReceiptOutbox {
            queue: Outbox::new(agent.paths().data_dir.join("reclaim-receipts")),
        }
    }

    /// Store a receipt durably before it is sent; one file per directive (a later receipt for
    /// the same directive replaces an unsent earlier one).
    pub fn push(&self, receipt: &ReclaimReceipt) -> Result<PathBuf> {
        let safe: String = receipt
            .directive_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.queue.write(&format!("{safe}.json"), receipt)
    }

    /// Receipts waiting, by file name. An unreadable file is set aside in `rejected/`.
    pub fn pending(&self) -> Result<Vec<(PathBuf, ReclaimReceipt)>> {
        let paths = self.queue.files()?;
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            let bytes = fs::read(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            match serde_json::from_slice(&bytes) {
                Ok(r) => out.push((path, r)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "receipt unreadable; set aside");
                    self.queue.reject(&path)?;
                }
            }
        }
        Ok(out)
    }

    /// Send every waiting receipt, oldest first by name; each is removed once acknowledged. A
    /// refusal for good (a 4xx but a timeout, a replayed request number or a rate limit) sets
    /// that receipt aside; the service unreachable or failing
    /// stops the round with the rest kept for the next.
    pub fn send(&self, agent: &Agent) -> Result<SentReceipts> {
        let pending = self.pending()?;
        let mut out = SentReceipts {
            pending: pending.len(),
            ..SentReceipts::default()
        };
        for (path, receipt) in pending {
            match agent
                .call_signed::<_, ReclaimReceiptAck>("/api/v1/agent/reclaim/receipts", &receipt)
            {
                Ok(ack) => {
                    self.queue.acknowledge(&path)?;
                    out.acked.push(ack);
                }
                Err(Error::Service {
                    status, message, ..
                }) if (400..500).contains(&status) && ![408, 409, 429].contains(&status) => {
                    self.queue.reject(&path)?;
                    out.rejected.push((receipt.directive_id.clone(), message));
                }
                Err(e) => {
                    out.stopped_by = Some(e.to_string());
                    break;
                }
            }
            out.pending -= 1;
        }
        Ok(out)
    }
}
