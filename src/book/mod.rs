//! Order books for every venue, and the views consumers read them through.
//!
//! Each adapter that carries a book builds it from the feed and verifies it
//! with what its venue offers; `view.rs` is the one way consumers read any of
//! them. See [`BookViews`]. `breaks.rs` names why a book stopped being
//! verified ([`BookBreak`]). `snapshot.rs` is the hook for venues whose
//! snapshot comes from elsewhere ([`SnapshotSource`]).

mod breaks;
mod snapshot;
mod view;

pub(crate) use breaks::signed_id;
pub use breaks::BookBreak;
pub use snapshot::{
    BookSnapshot, SnapshotError, SnapshotFetched, SnapshotFuture, SnapshotRequest, SnapshotSource,
};
pub(crate) use view::Verified;
pub use view::{BookTop, BookView, BookViews};
