//! A strided matrix view: what the attention kernels and their register tiles pass around.

/// One head's matrix `[rows, cols]`: a pointer and its (row, column) strides.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    pub(super) ptr: *const f32,
    pub(super) rs: isize,
    pub(super) cs: isize,
}

impl Mat {
    pub(super) fn of(ptr: *const f32, rs: isize, cs: isize) -> Self {
        Self { ptr, rs, cs }
    }

    /// The transpose: the same values, rows and columns swapped.
    pub(super) fn transposed(self) -> Self {
        Self::of(self.ptr, self.cs, self.rs)
    }

    /// The matrix from row `row` on.
    pub(super) fn rows_from(self, row: usize) -> Self {
        Self::of(self.row_ptr(row), self.rs, self.cs)
    }

    /// Row `row` onwards. Computing the pointer is safe (wrapping arithmetic); reading
    /// through it is the caller's unsafe act, for rows inside the matrix.
    pub(super) fn row_ptr(self, row: usize) -> *const f32 {
        self.ptr.wrapping_offset(row as isize * self.rs)
    }
}
