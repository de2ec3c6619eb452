package dev.loraflow.core.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class BatchSamplerTest {

    private static final int IGNORE = -100;
    private static final int PAD = 0;

    /** Example i holds i + 1 tokens, all equal to 10 + i, so a row tells which example it came from. */
    private static List<Example> examples(int count) {
        List<Example> examples = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            int[] ids = new int[i + 1];
            Arrays.fill(ids, 10 + i);
            examples.add(Example.unmasked(ids));
        }
        return examples;
    }

    /** Which example each row of the batch holds, by its first token. */
    private static List<Integer> rowSources(Batch batch) {
        List<Integer> sources = new ArrayList<>();
        for (int row = 0; row < batch.batchSize(); row++) {
            sources.add(batch.inputIds()[row * batch.seqLen()] - 10);
        }
        return sources;
    }

    private static List<Integer> stream(BatchSampler sampler, int batches) {
        List<Integer> sources = new ArrayList<>();
        for (int i = 0; i < batches; i++) {
            sources.addAll(rowSources(sampler.next()));
        }
        return sources;
    }

    @Test
    void everyEpochVisitsEveryExampleOnceInItsOwnOrder() {
        int count = 20;
        List<Integer> sources = stream(new BatchSampler(examples(count), 1, 32, PAD, 42, 0), 4 * count);
        List<List<Integer>> epochs = new ArrayList<>();
        for (int epoch = 0; epoch < 4; epoch++) {
            List<Integer> order = sources.subList(epoch * count, (epoch + 1) * count);
            List<Integer> sorted = new ArrayList<>(order);
            sorted.sort(null);
            assertEquals(IntStream.range(0, count).boxed().toList(), sorted, "epoch " + epoch);
            epochs.add(order);
        }
        // Two equal orders of 20 would have probability 1/20! per pair.
        assertEquals(4, epochs.stream().distinct().count(), epochs.toString());
    }

    @Test
    void resumingAtAnyPositionContinuesTheSameStream() {
        List<Example> examples = examples(7);
        int batchSize = 3;
        List<Batch> uninterrupted = new ArrayList<>();
        BatchSampler sampler = new BatchSampler(examples, batchSize, 4, PAD, 5, 0);
        for (int i = 0; i < 12; i++) {
            assertEquals((long) i * batchSize, sampler.position());
            uninterrupted.add(sampler.next());
        }
        for (int step = 0; step < 12; step++) {
            BatchSampler resumed = new BatchSampler(examples, batchSize, 4, PAD, 5, (long) step * batchSize);
            for (int i = step; i < 12; i++) {
                assertEquals(uninterrupted.get(i), resumed.next(), "resumed at step " + step + ", batch " + i);
            }
        }
        // Rows run on across batch boundaries and epochs: any batch size and any starting point give the same rows.
        List<Integer> rows = stream(new BatchSampler(examples, 1, 4, PAD, 5, 0), 36);
        assertEquals(rows, uninterrupted.stream().flatMap(batch -> rowSources(batch).stream()).toList());
        for (int position = 0; position < 30; position++) {
            assertEquals(rows.subList(position, position + 5), stream(new BatchSampler(examples, 5, 4, PAD, 5, position), 1),
                    "from position " + position);
        }
        BatchSampler far = new BatchSampler(examples, 2, 4, PAD, 5, 7L * 1_000_000_000L + 3);
        assertEquals(1_000_000_000L, far.epoch());
        far.next();
        assertEquals(7L * 1_000_000_000L + 5, far.position());
    }

    @Test
    void theSeedDecidesTheOrder() {
        List<Example> examples = examples(30);
        List<Integer> first = stream(new BatchSampler(examples, 5, 2, PAD, 1, 0), 6);
        assertEquals(first, stream(new BatchSampler(examples, 5, 2, PAD, 1, 0), 6));
        assertNotEquals(first, stream(new BatchSampler(examples, 5, 2, PAD, 2, 0), 6));
    }

    @Test
    void examplesAreTruncatedAndRightPadded() {
        List<Example> examples = List.of(
                new Example(new int[] {1, 2, 3, 4, 5, 6}, new int[] {IGNORE, IGNORE, 3, 4, 5, 6}),
                new Example(new int[] {7, 8}, new int[] {IGNORE, 8}));
        Batch batch = new BatchSampler(examples, 2, 4, 99, 0, 0).next();
        int[] longRow = {1, 2, 3, 4};
        int[] shortRow = {7, 8, 99, 99};
        boolean longFirst = batch.inputIds()[0] == 1;
        int[] expectedIds = longFirst ? concat(longRow, shortRow) : concat(shortRow, longRow);
        int[] expectedLabels = longFirst
                ? new int[] {IGNORE, IGNORE, 3, 4, IGNORE, 8, IGNORE, IGNORE}
                : new int[] {IGNORE, 8, IGNORE, IGNORE, IGNORE, IGNORE, 3, 4};
        assertEquals(new Batch(expectedIds, expectedLabels, 2, 4), batch);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] joined = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, joined, a.length, b.length);
        return joined;
    }

    /** All 6 orders of 3 examples over 60,000 keys: each expected 10,000 times, σ ≈ 91, allowed ±500. */
    @Test
    void permutationsAreUniform() {
        Map<String, Integer> counts = new HashMap<>();
        for (long key = 0; key < 60_000; key++) {
            counts.merge(Arrays.toString(BatchSampler.permutation(3, key)), 1, Integer::sum);
        }
        assertEquals(6, counts.size(), counts.toString());
        counts.values().forEach(count -> assertTrue(Math.abs(count - 10_000) < 500, counts.toString()));
    }

    @Test
    void badArgumentsAreRejected() {
        List<Example> examples = examples(3);
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(List.of(), 1, 1, PAD, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(examples, 0, 1, PAD, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(examples, 1, 0, PAD, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(examples, 1 << 16, 1 << 16, PAD, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(examples, 1, 1, -1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new BatchSampler(examples, 1, 1, PAD, 0, -1));
        assertThrows(IllegalArgumentException.class, () -> new Example(new int[0], new int[0]));
        var mismatch = assertThrows(IllegalArgumentException.class, () -> new Example(new int[] {1, 2}, new int[] {1}));
        assertTrue(mismatch.getMessage().contains("labels has 1 entries but input_ids has 2"), mismatch.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Batch(new int[6], new int[6], 2, 4));
    }

    @Test
    void examplesCopyTheirArrays() {
        int[] ids = {1, 2};
        Example example = Example.unmasked(ids);
        ids[0] = 5;
        example.inputIds()[1] = 7;
        assertArrayEquals(new int[] {1, 2}, example.inputIds());
        assertArrayEquals(new int[] {1, 2}, example.labels());
    }
}
