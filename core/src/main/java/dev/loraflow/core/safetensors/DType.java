package dev.loraflow.core.safetensors;

/**
 * Element types of the safetensors format, named exactly as they appear in the header.
 *
 * <p>The declaration order is the reference implementation's ({@code Dtype} in
 * safetensors/src/tensor.rs); its writer lays tensors out by descending position in that order, so
 * {@link SafetensorsWriter} relies on {@link #ordinal()} to produce the same bytes.
 */
public enum DType {
    BOOL(1),
    U8(1),
    I8(1),
    F8_E5M2(1),
    F8_E4M3(1),
    I16(2),
    U16(2),
    F16(2),
    BF16(2),
    I32(4),
    U32(4),
    F32(4),
    F64(8),
    I64(8),
    U64(8);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes one element occupies. */
    public int byteSize() {
        return byteSize;
    }

    /** Whether {@link SafetensorsFile#readFloat32} can convert this type. */
    public boolean isReadableAsFloat32() {
        return this == F16 || this == BF16 || this == F32 || this == F64;
    }

    /**
     * The type a header names.
     *
     * @throws IllegalArgumentException for a name this format version does not define
     */
    public static DType parse(String headerName) {
        for (DType type : values()) {
            if (type.name().equals(headerName)) {
                return type;
            }
        }
        throw new IllegalArgumentException("unknown dtype '" + headerName + "'");
    }
}
