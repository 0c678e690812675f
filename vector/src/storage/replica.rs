//! A replica's collection: reloading what it keeps in memory from what the writer made
//! durable.

use std::sync::Arc;

use crate::error::Result;
use crate::serde::state::IndexState;
use crate::serde::{self as keys, state};
use crate::storage::{Collection, View, entry_size, load_centroids, load_live};

impl Collection {
    /// Reloads what a replica keeps in memory: the live set, and the centroids when
    /// they changed.
    pub async fn refresh(&self) -> Result<()> {
        let state = match self.reader.get(&keys::state_key(self.id)).await? {
            Some(v) => state::decode(&v)?,
            None => IndexState::default(),
        };
        if state != self.view().state {
            self.cache.clear();
            let centroids =
                load_centroids(&self.reader, self.id, self.spec.dimension as usize).await?;
            let es = entry_size(&self.spec, &state);
            *self.view.write() = Arc::new(View {
                state,
                centroids,
                entry_size: es,
            });
        }
        let live = load_live(&self.reader, self.id).await?;
        let changed = *self.live.read() != live;
        if changed {
            // Posting lists may have changed too; a replica cannot tell which.
            self.cache.clear();
            *self.live.write() = live;
        }
        Ok(())
    }
}
