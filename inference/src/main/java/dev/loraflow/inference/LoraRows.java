package dev.loraflow.inference;

import dev.loraflow.onnx.FloatTensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The LoRA feeds of one run whose rows use different adapters: per module, every adapter's A [r, in]
 * and B [out, r] stacked along r, and scaling [rows, 1, Σr] holding each row's adapter's scaling on that
 * adapter's ranks and 0 elsewhere, so that each row gets its own adapter's update and nothing of the
 * others'. The base model is the adapter of rank 0. Rows that all use one adapter get its feeds as they
 * are (scaling [1, 1, r], every row alike).
 */
final class LoraRows {

    private static final String A = ".A";
    private static final String B = ".B";
    private static final String SCALING = ".scaling";

    private LoraRows() {}

    /**
     * @param loraInputs the graph's LoRA input names
     * @param rows       each row's adapter feeds ({@link ServedModel#adapterFeeds}), one map per adapter
     */
    static Map<String, FloatTensor> feeds(List<String> loraInputs, List<Map<String, FloatTensor>> rows) {
        List<Map<String, FloatTensor>> adapters = new ArrayList<>();
        Map<Map<String, FloatTensor>, Integer> indices = new IdentityHashMap<>();
        int[] adapterOfRow = new int[rows.size()];
        for (int row = 0; row < rows.size(); row++) {
            adapterOfRow[row] = indices.computeIfAbsent(rows.get(row), feeds -> {
                adapters.add(feeds);
                return adapters.size() - 1;
            });
        }
        if (adapters.size() == 1) {
            return adapters.getFirst();
        }
        Map<String, FloatTensor> stacked = new HashMap<>();
        for (String input : loraInputs) {
            if (!input.endsWith(A)) {
                continue;
            }
            String module = input.substring(0, input.length() - A.length());
            int in = Math.toIntExact(adapters.getFirst().get(module + A).shape()[1]);
            int out = Math.toIntExact(adapters.getFirst().get(module + B).shape()[0]);
            int[] offsets = new int[adapters.size() + 1];
            for (int d = 0; d < adapters.size(); d++) {
                offsets[d + 1] = offsets[d] + Math.toIntExact(adapters.get(d).get(module + A).shape()[0]);
            }
            int rank = offsets[adapters.size()];
            float[] a = new float[rank * in];
            float[] b = new float[out * rank];
            for (int d = 0; d < adapters.size(); d++) {
                int r = offsets[d + 1] - offsets[d];
                System.arraycopy(adapters.get(d).get(module + A).values(), 0, a, offsets[d] * in, r * in);
                float[] own = adapters.get(d).get(module + B).values();
                for (int o = 0; o < out; o++) {
                    System.arraycopy(own, o * r, b, o * rank + offsets[d], r);
                }
            }
            float[] scaling = new float[rows.size() * rank];
            for (int row = 0; row < rows.size(); row++) {
                int d = adapterOfRow[row];
                System.arraycopy(adapters.get(d).get(module + SCALING).values(), 0, scaling, row * rank + offsets[d],
                        offsets[d + 1] - offsets[d]);
            }
            stacked.put(module + A, new FloatTensor(a, new long[] {rank, in}));
            stacked.put(module + B, new FloatTensor(b, new long[] {out, rank}));
            stacked.put(module + SCALING, new FloatTensor(scaling, new long[] {rows.size(), 1, rank}));
        }
        return stacked;
    }
}
