package dev.loraflow.cli;

import dev.loraflow.core.generate.StopTokens;
import dev.loraflow.core.model.CausalLanguageModel;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.PeftAdapter;
import dev.loraflow.core.quant.Quantization;
import dev.loraflow.core.text.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * A Hugging Face model directory as the commands use it: the model, its tokenizer when it has one, and the
 * tokens that end a generation ({@link StopTokens}).
 */
record ModelFiles(CausalLanguageModel model, Tokenizer tokenizer, List<Integer> stopTokenIds) implements AutoCloseable {

    /**
     * The model with the directory's tokenizer, read already ({@link #readTokenizer}, so that a command can tokenize and
     * check its memory before the model loads); closing the files closes it (closing it again does nothing).
     *
     * @param adapterDirectory a PEFT adapter to apply (unmerged), or null for the base model alone
     */
    static ModelFiles open(Path modelDirectory, Path adapterDirectory, Tokenizer tokenizer) throws IOException {
        requireDirectory(modelDirectory);
        CausalLanguageModel model;
        if (adapterDirectory == null) {
            model = CausalLanguageModel.load(modelDirectory, null, 0);
        } else {
            PeftAdapter adapter = PeftAdapter.read(adapterDirectory);
            model = CausalLanguageModel.load(modelDirectory, adapter.config(), 0);
            model.loadAdapter(adapter);
        }
        return new ModelFiles(model, tokenizer, StopTokens.of(modelDirectory, tokenizer));
    }

    /** Base model plus a fresh adapter of {@code lora}, for training. */
    static ModelFiles openForTraining(Path modelDirectory, LoraAdapterConfig lora, long seed, Quantization quantization)
            throws IOException {
        requireDirectory(modelDirectory);
        CausalLanguageModel model = CausalLanguageModel.load(modelDirectory, lora, seed, quantization);
        Tokenizer tokenizer = readTokenizer(modelDirectory);
        return new ModelFiles(model, tokenizer, StopTokens.of(modelDirectory, tokenizer));
    }

    /** The directory's tokenizer.json, or null where it has none. */
    static Tokenizer readTokenizer(Path modelDirectory) throws IOException {
        requireDirectory(modelDirectory);
        Path tokenizerFile = modelDirectory.resolve(Tokenizer.FILE_NAME);
        return Files.isRegularFile(tokenizerFile) ? Tokenizer.load(tokenizerFile) : null;
    }

    /**
     * The config of a PEFT adapter directory, for a memory check before the adapter is read; null for no directory,
     * or one without its config (which the adapter's own reading then reports, after the check).
     */
    static LoraAdapterConfig readAdapterConfig(Path adapterDirectory) throws IOException {
        Path config = adapterDirectory == null ? null : adapterDirectory.resolve(LoraAdapterConfig.FILE_NAME);
        return config != null && Files.isRegularFile(config) ? LoraAdapterConfig.read(config) : null;
    }

    /** The id padding positions carry: EOS when there is one (as Transformers' causal LMs pad), else 0. */
    int padId() {
        return padId(stopTokenIds);
    }

    static int padId(List<Integer> stopTokenIds) {
        return stopTokenIds.isEmpty() ? 0 : stopTokenIds.get(0);
    }

    @Override
    public void close() {
        if (tokenizer != null) {
            tokenizer.close();
        }
    }

    private static void requireDirectory(Path modelDirectory) throws IOException {
        if (!Files.isDirectory(modelDirectory)) {
            throw new IOException(modelDirectory + ": not a model directory");
        }
    }
}
