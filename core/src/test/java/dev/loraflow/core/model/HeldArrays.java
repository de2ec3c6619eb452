package dev.loraflow.core.model;

import dev.loraflow.core.lora.LoRALinear;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * The bytes of the primitive arrays an object holds — in its fields, in arrays of arrays, in lists and in LoRA
 * activations — each array counted once however many references it has: what a memory count made before the object
 * exists is held against.
 */
final class HeldArrays {

    private final Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());

    private HeldArrays() {}

    static long bytes(Object object) throws IllegalAccessException {
        return new HeldArrays().fieldBytes(object);
    }

    private long fieldBytes(Object object) throws IllegalAccessException {
        long bytes = 0;
        for (Class<?> type = object.getClass(); type != Object.class; type = type.getSuperclass()) {
            for (Field field : type.getDeclaredFields()) {
                if (Modifier.isStatic(field.getModifiers()) || field.isSynthetic()) {
                    continue; // constants, and the enclosing model
                }
                field.setAccessible(true);
                bytes += valueBytes(field.get(object));
            }
        }
        return bytes;
    }

    private long valueBytes(Object value) throws IllegalAccessException {
        if (value == null || !seen.add(value)) {
            return 0;
        }
        return switch (value) {
            case float[] floats -> 4L * floats.length;
            case int[] ints -> 4L * ints.length;
            case long[] longs -> 8L * longs.length;
            case Object[] elements -> {
                long sum = 0;
                for (Object element : elements) {
                    sum += valueBytes(element);
                }
                yield sum;
            }
            case List<?> elements -> {
                long sum = 0;
                for (Object element : elements) {
                    sum += valueBytes(element);
                }
                yield sum;
            }
            case LoRALinear.Activations activations -> fieldBytes(activations);
            default -> 0;
        };
    }
}
