//! Voxel element types (`ElementType`) and typed voxel storage.

/// MetaIO `ElementType`s this reader supports: the scalar integer and float
/// types. `MET_*_ARRAY`, `MET_STRING` and other names are rejected when the
/// header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ElementType {
    /// `MET_CHAR`: signed 8-bit integer.
    I8,
    /// `MET_UCHAR`: unsigned 8-bit integer.
    U8,
    /// `MET_SHORT`: signed 16-bit integer, the usual type of CT scans.
    I16,
    /// `MET_USHORT`: unsigned 16-bit integer.
    U16,
    /// `MET_INT` or `MET_LONG`: signed 32-bit integer.
    I32,
    /// `MET_UINT` or `MET_ULONG`: unsigned 32-bit integer.
    U32,
    /// `MET_LONG_LONG`: signed 64-bit integer.
    I64,
    /// `MET_ULONG_LONG`: unsigned 64-bit integer.
    U64,
    /// `MET_FLOAT`: IEEE 754 single precision.
    F32,
    /// `MET_DOUBLE`: IEEE 754 double precision.
    F64,
}

impl ElementType {
    /// The type a header's `ElementType` value names, or None when it is not
    /// a supported scalar type. `MET_LONG`/`MET_ULONG` map to 32 bits because
    /// MetaIO defines them as 4 bytes on every platform, whatever C's `long` is.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "MET_CHAR" => Self::I8,
            "MET_UCHAR" => Self::U8,
            "MET_SHORT" => Self::I16,
            "MET_USHORT" => Self::U16,
            "MET_INT" | "MET_LONG" => Self::I32,
            "MET_UINT" | "MET_ULONG" => Self::U32,
            "MET_LONG_LONG" => Self::I64,
            "MET_ULONG_LONG" => Self::U64,
            "MET_FLOAT" => Self::F32,
            "MET_DOUBLE" => Self::F64,
            _ => return None,
        })
    }

    /// Bytes per value (per channel) in the data file.
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// Canonical MetaIO name (`MET_INT`, not its synonym `MET_LONG`).
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "MET_CHAR",
            Self::U8 => "MET_UCHAR",
            Self::I16 => "MET_SHORT",
            Self::U16 => "MET_USHORT",
            Self::I32 => "MET_INT",
            Self::U32 => "MET_UINT",
            Self::I64 => "MET_LONG_LONG",
            Self::U64 => "MET_ULONG_LONG",
            Self::F32 => "MET_FLOAT",
            Self::F64 => "MET_DOUBLE",
        }
    }
}

/// Voxels in file order (x fastest, channels interleaved), native endianness.
/// The variant matches the header's [`ElementType`]; no value is converted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VoxelData {
    /// `MET_UCHAR` values.
    U8(Vec<u8>),
    /// `MET_CHAR` values.
    I8(Vec<i8>),
    /// `MET_USHORT` values.
    U16(Vec<u16>),
    /// `MET_SHORT` values.
    I16(Vec<i16>),
    /// `MET_UINT` / `MET_ULONG` values.
    U32(Vec<u32>),
    /// `MET_INT` / `MET_LONG` values.
    I32(Vec<i32>),
    /// `MET_ULONG_LONG` values.
    U64(Vec<u64>),
    /// `MET_LONG_LONG` values.
    I64(Vec<i64>),
    /// `MET_FLOAT` values.
    F32(Vec<f32>),
    /// `MET_DOUBLE` values.
    F64(Vec<f64>),
}

/// Applies `$body` to the inner Vec of any VoxelData variant.
macro_rules! with_voxels {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            VoxelData::U8($v) => $body,
            VoxelData::I8($v) => $body,
            VoxelData::U16($v) => $body,
            VoxelData::I16($v) => $body,
            VoxelData::U32($v) => $body,
            VoxelData::I32($v) => $body,
            VoxelData::U64($v) => $body,
            VoxelData::I64($v) => $body,
            VoxelData::F32($v) => $body,
            VoxelData::F64($v) => $body,
        }
    };
}
pub(crate) use with_voxels;

impl VoxelData {
    /// Number of values: pixels × channels.
    pub fn len(&self) -> usize {
        with_voxels!(self, v => v.len())
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type of the stored values.
    pub fn element_type(&self) -> ElementType {
        match self {
            Self::U8(_) => ElementType::U8,
            Self::I8(_) => ElementType::I8,
            Self::U16(_) => ElementType::U16,
            Self::I16(_) => ElementType::I16,
            Self::U32(_) => ElementType::U32,
            Self::I32(_) => ElementType::I32,
            Self::U64(_) => ElementType::U64,
            Self::I64(_) => ElementType::I64,
            Self::F32(_) => ElementType::F32,
            Self::F64(_) => ElementType::F64,
        }
    }

    /// Every value as f64 (exact for all types but 64-bit integers beyond 2^53).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_voxels!(self, v => v.iter().map(|&x| x.to_f64()).collect())
    }

    /// Little-endian bytes of the voxels, as a file with
    /// `BinaryDataByteOrderMSB = False` would hold them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        with_voxels!(self, v => {
            let mut out = Vec::with_capacity(std::mem::size_of_val(v.as_slice()));
            for x in v {
                out.extend_from_slice(x.to_le().as_bytes_of_one());
            }
            out
        })
    }
}

/// Primitive numbers valid for every bit pattern, so their storage can be
/// filled straight from file bytes.
///
/// # Safety
/// Implement only for plain integer and float types (no padding, no invalid
/// bit patterns).
pub(crate) unsafe trait Element: Copy + Default {
    /// Convert from a value stored in the other byte order.
    fn swap_bytes(self) -> Self;
    fn to_f64(self) -> f64;
    /// Identity on little-endian hosts, a byte swap on big-endian ones.
    fn to_le(self) -> Self {
        if cfg!(target_endian = "little") {
            self
        } else {
            self.swap_bytes()
        }
    }
    fn as_bytes_of_one(&self) -> &[u8] {
        bytes_of(std::slice::from_ref(self))
    }
}

macro_rules! int_element {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive integer: no padding, every bit pattern valid.
        unsafe impl Element for $t {
            fn swap_bytes(self) -> Self { <$t>::swap_bytes(self) }
            fn to_f64(self) -> f64 { self as f64 }
        }
    )*};
}
int_element!(u8, i8, u16, i16, u32, i32, u64, i64);

// SAFETY: IEEE floats have no padding and every bit pattern is a value.
unsafe impl Element for f32 {
    fn swap_bytes(self) -> Self {
        f32::from_bits(self.to_bits().swap_bytes())
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

// SAFETY: as for f32.
unsafe impl Element for f64 {
    fn swap_bytes(self) -> Self {
        f64::from_bits(self.to_bits().swap_bytes())
    }
    fn to_f64(self) -> f64 {
        self
    }
}

pub(crate) fn bytes_of<T: Element>(values: &[T]) -> &[u8] {
    // SAFETY: `Element` types have no padding; u8 has alignment 1 and the
    // length covers exactly the same memory.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

/// Lets file bytes land directly in the final typed buffer (no copy).
pub(crate) fn bytes_of_mut<T: Element>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as in `bytes_of`; additionally every bit pattern written
    // through the byte view is a valid `T` (the `Element` contract).
    unsafe {
        std::slice::from_raw_parts_mut(
            values.as_mut_ptr().cast::<u8>(),
            std::mem::size_of_val(values),
        )
    }
}

/// Fix the byte order in place after filling from a file of the given order.
pub(crate) fn to_native<T: Element>(values: &mut [T], file_big_endian: bool) {
    if file_big_endian != cfg!(target_endian = "big") {
        for v in values {
            *v = v.swap_bytes();
        }
    }
}

/// `n` zero values, or None when the allocation fails. Zeroed by the
/// allocator, so untouched pages of a large buffer cost nothing until read
/// into; `vec![0; n]` would abort the process on failure instead.
pub(crate) fn try_zeroed<T: Element>(n: usize) -> Option<Vec<T>> {
    if n == 0 || std::mem::size_of::<T>() == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: the layout is non-zero-sized; a null result is handled.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: allocated by the global allocator with `T`'s array layout for
    // exactly `n` elements, all initialised: all-zero bytes are a valid `T`
    // (the `Element` contract: every bit pattern is a value).
    Some(unsafe { Vec::from_raw_parts(ptr, n, n) })
}
