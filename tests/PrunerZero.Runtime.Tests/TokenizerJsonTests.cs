using System.Text.Json;
using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Runtime.Tests;

/// <summary>tokenizer.json as Hugging Face's `tokenizers` reads it: pre-tokenizer steps and the special tokens around a string.</summary>
public class TokenizerJsonTests : TorchGuarded
{
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

    /// <summary>The embedded model's tokenizer (tiny) or a golden variant of it, with the embedded model's tokenizer_config.json.</summary>
    static TextTokenizer Golden(string name)
    {
        string model = Path.Combine(Tests.Golden.RepoRoot, "models", "pz-llama-tiny");
        if (name == "tiny") return TextTokenizer.Load(model);
        string dir = TestCheckpoints.TempDir("hfgolden");
        File.Copy(Tests.Golden.File("hf", name + ".tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        // The family variants (llama3full, qwen) come with their own tokenizer_config.json.
        string own = Tests.Golden.File("hf", name + ".tokenizer_config.json");
        File.Copy(File.Exists(own) ? own : Path.Combine(model, "tokenizer_config.json"), Path.Combine(dir, "tokenizer_config.json"));
        return TextTokenizer.Load(dir);
    }

    /// <summary>
    /// Golden ids from Hugging Face's tokenizers (Rust) on each tokenizer.json as shipped, post_processor and all
    /// (golden/make_hf_golden.cs); here the file goes through TextTokenizer, which strips the post_processor and
    /// adds BOS itself. The project's previous implementation (Microsoft.ML.Tokenizers with its own pre-tokenizer
    /// steps) gave the same ids on all of these inputs, so the golden files are confirmed by two implementations.
    /// </summary>
    [Theory]
    [InlineData("tiny", "c4")]
    [InlineData("tiny", "wikitest")]
    [InlineData("digits", "wikitest")]
    [InlineData("llama3", "wikitest")]
    [InlineData("llama3full", "wikitest")]   // Llama-3.x layout, <|begin_of_text|> from its TemplateProcessing
    [InlineData("qwen", "wikitest")]         // Qwen2/3 layout: NFC, single-digit Split, no BOS
    [InlineData("qwen", "c4")]
    public void EveryIdOfTheCorporaEqualsHuggingFaceTokenizers(string name, string corpus)
    {
        var tok = Golden(name);
        Tests.Golden.SameIds(Tests.Golden.Ids(Tests.Golden.File("hf", $"{name}.{corpus}.ids.gz")), tok.Encode(Tests.Golden.Corpus(corpus)), $"{name} on {corpus}");
    }

    [Theory]
    [InlineData("tiny")]
    [InlineData("digits")]
    [InlineData("llama3")]
    [InlineData("llama3full")]
    [InlineData("qwen")]
    public void AdversarialStringsEncodeAsHuggingFaceTokenizers(string name)
    {
        var tok = Golden(name);
        using var doc = JsonDocument.Parse(File.ReadAllText(Tests.Golden.File("hf", "adversarial.json")));
        var failures = new List<string>();
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string input = Tests.Golden.FromUtf16(c.GetProperty("utf16"));
            int[] expected = [.. c.GetProperty("ids").GetProperty(name).EnumerateArray().Select(e => e.GetInt32())];
            int[] got = tok.Encode(input);
            if (!expected.SequenceEqual(got)) failures.Add($"{JsonSerializer.Serialize(input)}: [{string.Join(",", got)}], tokenizers [{string.Join(",", expected)}]");
            n++;
        }
        Assert.True(n > 150, $"only {n} cases");
        Assert.True(failures.Count == 0, $"{failures.Count} differences:\n" + string.Join("\n", failures.Take(40)));
    }

    /// <summary>
    /// The special tokens around a text per family, as transformers' AutoTokenizer adds them: Llama-3 <|begin_of_text|>
    /// (its TemplateProcessing), Qwen nothing, also when tokenizer_config.json names no class and the model is a Qwen one.
    /// </summary>
    [Fact]
    public void EachFamilyGetsItsSpecialTokens()
    {
        var llama3 = Golden("llama3full");
        Assert.True(llama3.AddBos);
        Assert.Equal(4096, llama3.BosId);
        Assert.Equal(4096, llama3.Encode("Hello")[0]);
        Assert.Equal([4096, 4096], llama3.Encode("<|begin_of_text|>")[..2]);   // written in the text: itself, after the BOS
        var qwen = Golden("qwen");
        Assert.False(qwen.AddBos);
        Assert.Equal(qwen.EncodeNoSpecial("Hello"), qwen.Encode("Hello"));
        Assert.Equal([4097], qwen.EncodeNoSpecial("<|im_start|>"));
        // NFC: the decomposed and the composed é encode alike.
        Assert.Equal(qwen.Encode("café"), qwen.Encode("café"));

        // No tokenizer_class: the model's family decides, as AutoTokenizer's model_type mapping does.
        string dir = TestCheckpoints.TempDir("qwen-noclass");
        File.Copy(Tests.Golden.File("hf", "qwen.tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": "<|endoftext|>"}""");
        var qwenCfg = LlamaConfig.FromJson(FamilyTests.Config("qwen2"));
        Assert.False(TextTokenizer.Load(dir, qwenCfg with { BosTokenId = 4096 }).AddBos);
        Assert.True(TextTokenizer.Load(dir, LlamaConfig.FromJson(TestCheckpoints.Config(vocab: 5000)) with { BosTokenId = 4096 }).AddBos);
    }

    [Fact]
    public void DecodingGivesTheTextBack()
    {
        var tok = Golden("tiny");
        string text = Tests.Golden.Corpus("wikitest");
        Assert.True(tok.Decode(tok.EncodeNoSpecial(text)) == text, "decoding wiki.test.raw does not give it back");
        Assert.Equal("a\uFFFDb", tok.Decode(tok.EncodeNoSpecial("a\uD800b")));   // a lone surrogate is U+FFFD
    }

    [Fact]
    public void BrokenTokenizerJsonIsOneLineNamingTheFile()
    {
        string dir = TestCheckpoints.TempDir("badjson");
        string path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, """{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}""");
        var e = Assert.Throws<PrunerZeroException>(() => TextTokenizer.Load(dir));
        Assert.StartsWith(path + ": not a valid tokenizer.json", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        File.WriteAllText(path, "not json");
        e = Assert.Throws<PrunerZeroException>(() => TextTokenizer.Load(dir));
        Assert.StartsWith(path + ": not valid JSON", e.Message);
    }
}
