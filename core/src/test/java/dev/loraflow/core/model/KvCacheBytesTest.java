package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.loraflow.core.lora.LoRALinear;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link CausalLanguageModel#kvCacheBytes}, which a generation's memory check counts before any model exists, against
 * the arrays a real cache of every architecture holds, found by walking its fields: an array added to a cache and not
 * to the count fails here.
 */
class KvCacheBytesTest {

    static Stream<Arguments> caches() {
        Stream<ModelConfig> configs = Stream.concat(Stream.of(TinyModels.GPT2), TinyModels.DECODER_FAMILIES.stream());
        return configs.flatMap(config -> Stream.of(1, 5, AbstractKvCache.CHUNK_ROWS, 80)
                .flatMap(capacity -> Stream.of(false, true)
                        .map(adapted -> Arguments.of(TinyModels.name(config), config, capacity, adapted))));
    }

    @ParameterizedTest(name = "{0} capacity {2} adapted={3}")
    @MethodSource("caches")
    void theCountIsWhatTheCacheAllocates(String name, ModelConfig config, int capacity, boolean adapted)
            throws IllegalAccessException {
        CausalLanguageModel model = adapted ? TinyModels.adapted(config, 7)
                : CausalLanguageModel.create(config, TinyModels.weights(config, 7), null, 7);

        CausalLanguageModel.KvCache cache = model.newKvCache(capacity);

        assertEquals(arrayBytes(cache), CausalLanguageModel.kvCacheBytes(config, adapted ? TinyModels.lora(config) : null,
                capacity));
    }

    /** The elements' bytes of every array {@code object} holds, in fields, arrays of arrays, lists and LoRA scratch. */
    private static long arrayBytes(Object object) throws IllegalAccessException {
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

    private static long valueBytes(Object value) throws IllegalAccessException {
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
            case List<?> elements -> valueBytes(elements.toArray());
            case LoRALinear.Activations activations -> arrayBytes(activations);
            case null, default -> 0;
        };
    }
}
