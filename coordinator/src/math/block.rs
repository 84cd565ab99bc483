//! Memory for an epoch's new entries: the rows accepted this epoch
//! ([`crate::epoch::rows::in_force`]) and the segments that start
//! ([`super::Segments::advance`]).
//!
//! Tens of millions of entries are written once and then only read: by the
//! plans, the ledger builders and the epoch cache. When the cache is on,
//! the block is a cache data file mapped in, so its pages are the columns:
//! writing the entry copies nothing, and the epoch touches one gigabyte of
//! fresh pages instead of two (at 100,000 × 256; first touches of fresh
//! memory were a third of an epoch's CPU on the project's machine).

use super::Column;

/// Zeroed storage for `len` entries of two UInt32 columns and some Float64
/// columns, filled in place, then frozen into shared columns.
pub struct Block(Box<dyn Storage>);

/// What holds a [`Block`]'s columns.
pub trait Storage: Send {
    /// The columns, to fill.
    fn columns(&mut self) -> ([&mut [u32]; 2], Vec<&mut [f64]>);
    /// The filled columns, shared from here on.
    fn freeze(self: Box<Self>) -> ([Column<u32>; 2], Vec<Column<f64>>);
}

/// Makes the block for a given number of entries.
pub type Alloc<'a> = &'a (dyn Fn(usize) -> Block + Sync);

impl Block {
    /// A block in the heap.
    pub fn in_memory(len: usize, floats: usize) -> Block {
        Block(Box::new(Memory {
            u32s: [vec![0; len], vec![0; len]],
            f64s: (0..floats).map(|_| vec![0.0; len]).collect(),
        }))
    }

    /// A block held by `storage`.
    pub fn new(storage: impl Storage + 'static) -> Block {
        Block(Box::new(storage))
    }

    /// See [`Storage::columns`].
    pub fn columns(&mut self) -> ([&mut [u32]; 2], Vec<&mut [f64]>) {
        self.0.columns()
    }

    /// See [`Storage::freeze`].
    pub fn freeze(self) -> ([Column<u32>; 2], Vec<Column<f64>>) {
        self.0.freeze()
    }
}

struct Memory {
    u32s: [Vec<u32>; 2],
    f64s: Vec<Vec<f64>>,
}

impl Storage for Memory {
    fn columns(&mut self) -> ([&mut [u32]; 2], Vec<&mut [f64]>) {
        let [a, b] = &mut self.u32s;
        (
            [a, b],
            self.f64s.iter_mut().map(|c| c.as_mut_slice()).collect(),
        )
    }

    fn freeze(self: Box<Self>) -> ([Column<u32>; 2], Vec<Column<f64>>) {
        let [a, b] = self.u32s;
        (
            [a.into(), b.into()],
            self.f64s.into_iter().map(Into::into).collect(),
        )
    }
}
