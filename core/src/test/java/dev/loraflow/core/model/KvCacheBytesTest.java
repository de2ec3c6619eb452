package dev.loraflow.core.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link CausalLanguageModel#kvCacheBytes}, which a generation's memory check counts before any model exists, against
 * the arrays a real cache of every architecture holds, found by walking its fields ({@link HeldArrays}): an array
 * added to a cache and not to the count fails here.
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

        assertEquals(HeldArrays.bytes(cache), CausalLanguageModel.kvCacheBytes(config, adapted ? TinyModels.lora(config) : null,
                capacity));
    }
}
