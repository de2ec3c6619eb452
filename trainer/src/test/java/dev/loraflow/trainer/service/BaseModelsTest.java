package dev.loraflow.trainer.service;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.loraflow.core.model.Gpt2Config;
import dev.loraflow.core.model.ModelDigest;
import dev.loraflow.core.model.RandomModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BaseModelsTest {

    private static final Gpt2Config TINY = new Gpt2Config(64, 16, 16, 1, 2, 32, 1e-5);

    @TempDir
    Path models;

    @Test
    void namesOfOneDirectoryShareOneCachedBase() throws IOException {
        RandomModel.write(TINY, 1, models.resolve("m"));
        Files.createSymbolicLink(models.resolve("alias"), models.resolve("m"));
        BaseModels bases = new BaseModels(models, 4);
        BaseModels.Base base = bases.get("m");
        for (String name : new String[] {"./m", "m/", "m/.", "alias", "./alias/"}) {
            assertSame(base, bases.get(name), name);
        }
        assertEquals(1, bases.cached());
        assertEquals(ModelDigest.of(models.resolve("m")), base.sha256());
        assertThrows(IllegalArgumentException.class, () -> bases.get("../m"));
    }

    @Test
    void theLeastRecentlyUsedBaseLeavesBeyondTheBound() throws IOException {
        for (String name : new String[] {"a", "b", "c"}) {
            RandomModel.write(TINY, name.charAt(0), models.resolve(name));
        }
        BaseModels bases = new BaseModels(models, 2);
        BaseModels.Base a = bases.get("a");
        BaseModels.Base b = bases.get("b");
        assertSame(a, bases.get("a"), "a is now the most recently used");
        BaseModels.Base c = bases.get("c");
        assertEquals(2, bases.cached());
        assertSame(a, bases.get("a"), "b left, not a");
        assertSame(c, bases.get("c"));
        assertNotSame(b, bases.get("b"), "b is loaded again");
        assertEquals(2, bases.cached());
        assertThrows(IllegalArgumentException.class, () -> new BaseModels(models, 0));
    }
}
