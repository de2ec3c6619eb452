package dev.loraflow.core.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.loraflow.core.peft.LoraAdapterConfig;
import dev.loraflow.core.peft.LoraAdapterConfig.TargetModules;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Decides which linear modules of a model get a LoRA adapter, and with which rank and alpha, the way
 * PEFT's {@code LoraModel} does: {@code _maybe_include_all_linear_layers}, then
 * {@code check_target_module_exists} on every module, then {@code rank_pattern}/{@code alpha_pattern}.
 */
public final class LoraTargets {

    /** PEFT's key, which LoraAdapterConfig keeps among its other keys. */
    static final String EXCLUDE_MODULES = "exclude_modules";

    // PEFT's re.match(r".*\.[^.]*\.(\d+)\.", key): the last "<list>.<index>." in the path.
    private static final Pattern ANY_LAYER_LIST = Pattern.compile(".*\\.[^.]*\\.(\\d+)\\.");

    private LoraTargets() {}

    /**
     * The adapted modules, in the model's module order.
     *
     * @throws IllegalArgumentException if no linear module matches the config's target_modules, as PEFT
     *     raises "Target modules ... not found in the base model"
     */
    public static List<LoraTarget> select(ModelLayout layout, LoraAdapterConfig config) {
        Predicate<String> excluded = excludedModules(config);
        List<LoraTarget> targets = new ArrayList<>();
        for (LinearModule module : layout.linearModules()) {
            String path = layout.peftModulePath(module.path());
            if (!excluded.test(path) && isTargeted(layout, config, path)) {
                targets.add(new LoraTarget(path, module.in(), module.out(), module.fanInFanOut(),
                        config.rankFor(path), config.alphaFor(path), config.scaling(path)));
            }
        }
        if (targets.isEmpty()) {
            throw new IllegalArgumentException(notFoundMessage(layout, config));
        }
        return List.copyOf(targets);
    }

    /**
     * The names PEFT targets when an adapter config gives none (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING):
     * q_proj and v_proj for llama, qwen2, mistral, gemma and gemma2. PEFT has no entry for phi3 and asks
     * for target_modules; loraflow's choice is the fused qkv_proj, the module that holds q and v there.
     */
    public static List<String> architectureDefault(ModelConfig config) {
        return switch (config) {
            case Gpt2Config _ -> List.of("c_attn");
            case DecoderConfig decoder when decoder.family().fusedProjections() -> List.of("qkv_proj");
            case DecoderConfig _ -> List.of("q_proj", "v_proj");
        };
    }

    /**
     * PEFT's {@code exclude_modules}, checked before target_modules: a regex string must match the whole
     * path, a list matches like target names (whole path or dotted suffix).
     */
    private static Predicate<String> excludedModules(LoraAdapterConfig config) {
        JsonNode exclude = config.otherKeys().get(EXCLUDE_MODULES);
        if (!excludesAnything(exclude)) {
            return path -> false;
        }
        if (exclude.isTextual()) {
            Pattern pattern = Pattern.compile(exclude.textValue());
            return path -> pattern.matcher(path).matches();
        }
        if (!exclude.isArray()) {
            throw new IllegalArgumentException(EXCLUDE_MODULES + " must be a regex string or a list of names, found " + exclude);
        }
        List<String> names = new ArrayList<>();
        for (JsonNode name : exclude) {
            if (!name.isTextual()) {
                throw new IllegalArgumentException(EXCLUDE_MODULES + " must hold strings only, found " + name);
            }
            names.add(name.textValue());
        }
        return path -> names.contains(path) || names.stream().anyMatch(name -> path.endsWith("." + name));
    }

    // PEFT tests the value's truthiness, and writes "exclude_modules": null into every config it saves.
    private static boolean excludesAnything(JsonNode exclude) {
        if (exclude == null || exclude.isNull()) {
            return false;
        }
        return exclude.isTextual() ? !exclude.textValue().isEmpty() : !exclude.isArray() || !exclude.isEmpty();
    }

    private static boolean isTargeted(ModelLayout layout, LoraAdapterConfig config, String path) {
        return switch (config.targetModules()) {
            case TargetModules.Regex(String pattern) -> Pattern.matches(pattern, path);
            case TargetModules.Names(List<String> names) -> matchesNames(names, config, path);
            case TargetModules.ArchitectureDefault() -> matchesNames(architectureDefault(layout.config()), config, path);
            case TargetModules.AllLinear() -> matchesNames(allLinearNames(layout), config, path);
        };
    }

    /**
     * PEFT turns "all-linear" into the set of linear modules' last name components, less the output
     * head's, so afterwards it matches (and honours layers_to_transform) exactly like a list of names.
     */
    private static List<String> allLinearNames(ModelLayout layout) {
        Set<String> names = new LinkedHashSet<>();
        for (LinearModule module : layout.linearModules()) {
            names.add(module.baseName());
        }
        names.remove(ModelLayout.OUTPUT_HEAD);
        return List.copyOf(names);
    }

    private static boolean matchesNames(List<String> names, LoraAdapterConfig config, String path) {
        // As in PEFT, a name equal to the full path selects the module whatever layers_to_transform says.
        if (names.contains(path)) {
            return true;
        }
        boolean suffixMatch = names.stream().anyMatch(name -> path.endsWith("." + name));
        if (!suffixMatch || config.layersToTransform().isEmpty()) {
            return suffixMatch;
        }
        Integer layer = layerIndex(path, config.layersPattern());
        return layer != null && config.layersToTransform().contains(layer);
    }

    /** The index PEFT reads from the path for layers_to_transform, or null if the path has none. */
    private static Integer layerIndex(String path, List<String> layersPatterns) {
        if (layersPatterns.isEmpty()) {
            return indexFrom(ANY_LAYER_LIST.matcher(path));
        }
        for (String layersPattern : layersPatterns) {
            Integer index = indexFrom(Pattern.compile(".*\\." + layersPattern + "\\.(\\d+)\\.").matcher(path));
            if (index != null) {
                return index;
            }
        }
        return null;
    }

    // re.match anchors at the start only, as lookingAt does.
    private static Integer indexFrom(Matcher matcher) {
        return matcher.lookingAt() ? Integer.valueOf(matcher.group(1)) : null;
    }

    private static String notFoundMessage(ModelLayout layout, LoraAdapterConfig config) {
        String targets = switch (config.targetModules()) {
            case TargetModules.Regex(String pattern) -> "'" + pattern + "'";
            case TargetModules.Names(List<String> names) -> names.toString();
            case TargetModules.ArchitectureDefault() -> architectureDefault(layout.config()).toString();
            case TargetModules.AllLinear() -> "'" + TargetModules.ALL_LINEAR + "'";
        };
        Set<String> linearNames = new LinkedHashSet<>();
        layout.linearModules().forEach(module -> linearNames.add(module.baseName()));
        var message = new StringBuilder("Target modules " + targets + " not found in the base model ("
                + layout.config().modelType() + ")");
        JsonNode exclude = config.otherKeys().get(EXCLUDE_MODULES);
        if (excludesAnything(exclude)) {
            message.append(" after ").append(EXCLUDE_MODULES).append(' ').append(exclude);
        }
        if (!config.layersToTransform().isEmpty()) {
            message.append(" within layers_to_transform ").append(config.layersToTransform());
            if (!config.layersPattern().isEmpty()) {
                message.append(" and layers_pattern ").append(config.layersPattern());
            }
        }
        message.append("; its linear modules are ").append(String.join(", ", linearNames))
                .append(", e.g. ").append(layout.peftModulePath(layout.linearModules().getFirst().path()));
        return message.toString();
    }
}
