package dev.loraflow.core.io;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

/** Expected strings are Python 3's own output for the same values. */
class PythonJsonTest {

    @Test
    void floatsAreWrittenAsPythonRepr() {
        double[] values = {0.0, -0.0, 0.05, 1.0, 16.0, 1e-05, 0.0001, 0.00012345, 1e16, 1e15, 123456789012345678.0,
                1.5e-7, 0.1 + 0.2, 1.0 / 3, -7.25e22, 5e-324, Double.MAX_VALUE, 100.0, 1e22,
                Double.NaN, Double.NEGATIVE_INFINITY};
        String[] python = {"0.0", "-0.0", "0.05", "1.0", "16.0", "1e-05", "0.0001", "0.00012345", "1e+16",
                "1000000000000000.0", "1.2345678901234568e+17", "1.5e-07", "0.30000000000000004", "0.3333333333333333",
                "-7.25e+22", "5e-324", "1.7976931348623157e+308", "100.0", "1e+22", "NaN", "-Infinity"};
        for (int i = 0; i < values.length; i++) {
            assertEquals(python[i], PythonJson.floatRepr(values[i]), "repr of " + values[i]);
        }
    }

    @Test
    void layoutMatchesJsonDumpsIndent2SortKeys() throws Exception {
        var tree = new ObjectMapper().readTree(
                "{\"b\":[1,2,{}],\"a\":{\"x\":[],\"é\\\"\\\\\\n\\u0001\\u007f😀\":null},\"c\":0.05,\"d\":true}");
        String python = """
                {
                  "a": {
                    "x": [],
                    "\\u00e9\\"\\\\\\n\\u0001\\u007f\\ud83d\\ude00": null
                  },
                  "b": [
                    1,
                    2,
                    {}
                  ],
                  "c": 0.05,
                  "d": true
                }""";
        assertEquals(python, PythonJson.dumps(tree));
    }

    @Test
    void keysSortByCodePointLikePython() throws Exception {
        // U+FF5E sorts before U+1F600 in Python, although its UTF-16 unit is larger than the surrogate's.
        var tree = new ObjectMapper().readTree("{\"😀\":1,\"～\":2}");
        assertEquals("{\n  \"\\uff5e\": 2,\n  \"\\ud83d\\ude00\": 1\n}", PythonJson.dumps(tree));
    }
}
