using System.Text.Json.Nodes;
using PrunerZero.Runtime;
using PrunerZero.Runtime.Training;

namespace PrunerZero.Runtime.Tests;

/// <summary>tokenizer.json as Hugging Face's `tokenizers` reads it: pre-tokenizer steps and the special tokens around a string.</summary>
public class TokenizerJsonTests
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
}
