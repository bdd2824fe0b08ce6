using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Runtime.Tests;

/// <summary>tokenizer.json as Hugging Face's `tokenizers` reads it: pre-tokenizer steps and the special tokens around a string.</summary>
public class TokenizerJsonTests
{
    static string[] Pieces(string preTokenizerJson, string text, params string[] special)
    {
        var pre = HfPreTokenizer.FromJson(JsonNode.Parse(preTokenizerJson), special, "test");
        return [.. pre.PreTokenize(text).Select(p => text.Substring(p.Offset, p.Length))];
    }

    static string Split(string behavior, bool invert = false) =>
        $$"""{"type":"Split","pattern":{"String":"-"},"behavior":"{{behavior}}","invert":{{(invert ? "true" : "false")}}}""";

    [Fact]
    public void SplitBehaviorsAsTheTokenizersDocsShowThem()
    {
        // The examples of tokenizers' SplitDelimiterBehavior documentation.
        const string t = "the-final--countdown";
        Assert.Equal(["the", "final", "countdown"], Pieces(Split("Removed"), t));
        Assert.Equal(["the", "-", "final", "-", "-", "countdown"], Pieces(Split("Isolated"), t));
        Assert.Equal(["the-", "final-", "-", "countdown"], Pieces(Split("MergedWithPrevious"), t));
        Assert.Equal(["the", "-final", "-", "-countdown"], Pieces(Split("MergedWithNext"), t));
        Assert.Equal(["the", "-", "final", "--", "countdown"], Pieces(Split("Contiguous"), t));
        Assert.Equal(["-", "-", "-"], Pieces(Split("Removed", invert: true), t)); // the words are the matches now
    }

    [Fact]
    public void DigitsThenByteLevelRefinesEveryPiece()
    {
        // SmolLM's pre-tokenizer: digits one by one, then the GPT-2 regex inside each piece.
        const string seq = """{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]}""";
        Assert.Equal(["Call", " ", "9", "1", "1", " now", "!"], Pieces(seq, "Call 911 now!"));
        Assert.Equal(["ab", " ", "12", " c"], Pieces("""{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":false},{"type":"ByteLevel","use_regex":true}]}""", "ab 12 c"));
        // Plain GPT-2 regex on the same text keeps " 911" whole.
        Assert.Equal(["Call", " 911", " now", "!"], Pieces("""{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}""", "Call 911 now!"));
    }

    [Fact]
    public void Llama3SplitIsolatedThenByteLevelWithoutRegex()
    {
        const string seq = """
            {"type":"Sequence","pretokenizers":[
              {"type":"Split","pattern":{"Regex":"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},"behavior":"Isolated","invert":false},
              {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}
            """;
        Assert.Equal(["Hello", " world", "'S", " ", "123", "45", "\n\n", "x"], Pieces(seq, "Hello world'S 12345\n\nx"));
    }

    [Fact]
    public void SpecialTokensAreCutOutFirstAndUnsupportedStepsRefused()
    {
        const string bl = """{"type":"ByteLevel","add_prefix_space":false,"use_regex":true}""";
        Assert.Equal(["<s>", "hi", "</s>", "<s>", " there"], Pieces(bl, "<s>hi</s><s> there", "<s>", "</s>"));
        var e = Assert.Throws<PrunerZeroException>(() => Pieces("""{"type":"Metaspace","replacement":"▁"}""", "x"));
        Assert.Contains("Metaspace", e.Message);
        e = Assert.Throws<PrunerZeroException>(() => Pieces("""{"type":"Split","pattern":{"String":"-"},"behavior":"Sideways"}""", "x"));
        Assert.Contains("Sideways", e.Message);
    }

    /// <summary>The test byte tokenizer with its tokenizer.json and tokenizer_config.json edited.</summary>
    static TextTokenizer Load(Action<JsonObject>? editJson, string? tokenizerConfig)
    {
        string dir = TestCheckpoints.TempDir("tokjson");
        TestCheckpoints.WriteByteTokenizer(dir);
        string path = Path.Combine(dir, "tokenizer.json");
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        editJson?.Invoke(root);
        File.WriteAllText(path, root.ToJsonString());
        string cfg = Path.Combine(dir, "tokenizer_config.json");
        if (tokenizerConfig is null) File.Delete(cfg); else File.WriteAllText(cfg, tokenizerConfig);
        return TextTokenizer.Load(dir);
    }

    static JsonObject Template(string bos) => new()
    {
        ["type"] = "TemplateProcessing",
        ["single"] = new JsonArray(
            new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
            new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        ["pair"] = new JsonArray(),
        ["special_tokens"] = new JsonObject { [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(256), ["tokens"] = new JsonArray(bos) } },
    };

    [Fact]
    public void SpecialTokensAroundAStringFollowTransformers()
    {
        int[] th = [258]; // "th": one merge
        // No tokenizer class: AutoTokenizer picks LlamaTokenizerFast for a llama checkpoint; add_bos_token defaults to true.
        Assert.Equal([256, .. th], Load(null, """{"bos_token": "<s>"}""").Encode("th"));
        Assert.Equal([256, .. th], Load(null, null).Encode("th"));
        // LlamaTokenizerFast with add_eos_token, add_bos_token false.
        Assert.Equal([.. th, 257], Load(null, """{"tokenizer_class":"LlamaTokenizerFast","add_bos_token":false,"add_eos_token":true,"bos_token":"<s>","eos_token":"</s>"}""").Encode("th"));
        // Another class: the post_processor decides (LLaMA-3 style template, inside a Sequence) ...
        Assert.Equal([256, .. th], Load(r => r["post_processor"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(new JsonObject { ["type"] = "ByteLevel" }, Template("<s>")),
        }, """{"tokenizer_class":"PreTrainedTokenizerFast","bos_token":"<s>"}""").Encode("th"));
        // ... and a ByteLevel post_processor (GPT-2 style, as SmolLM ships) adds nothing.
        var gpt2 = Load(r => r["post_processor"] = new JsonObject { ["type"] = "ByteLevel" }, """{"tokenizer_class":"GPT2Tokenizer","bos_token":"<s>"}""");
        Assert.Equal(th, gpt2.Encode("th"));
        Assert.False(gpt2.AddBos);
        Assert.Equal(256, gpt2.BosId);
        // Special tokens inside the text are encoded as themselves, not as bytes.
        Assert.Equal([256, 256, .. th, 257], Load(null, null).Encode("<s>th</s>"));
    }

    [Fact]
    public void IgnoreMergesTakesWholeWordsFromTheVocabulary()
    {
        // "the" is in the vocabulary but no merge makes it from "th" + "e".
        static void AddThe(JsonObject r) => r["model"]!["vocab"]!["the"] = 259;
        Assert.Equal([258, 'e'], Load(r => AddThe(r), "{}").EncodeNoSpecial("the"));
        var tok = Load(r => { AddThe(r); r["model"]!["ignore_merges"] = true; }, "{}");
        Assert.Equal([259], tok.EncodeNoSpecial("the"));
        // " the" is not in the vocabulary: merged as usual (byte ids equal the byte values here); specials stay whole.
        Assert.Equal([259, ' ', 258, 'e'], tok.EncodeNoSpecial("the the"));
        Assert.Equal([256, 256, 259], tok.Encode("<s>the"));
    }
}
