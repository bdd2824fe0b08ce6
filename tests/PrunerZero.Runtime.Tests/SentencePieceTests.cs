using Google.Protobuf;
using System.Text.Json;
using PrunerZero.Runtime;

namespace PrunerZero.Runtime.Tests;

/// <summary>
/// The tokenizer.model path (SentencePiece BPE, as LLaMA-1/2 ship it), on a model proto written here field by
/// field from sentencepiece_model.proto: byte fallback, dummy prefix, &lt;unk&gt;/&lt;s&gt;/&lt;/s&gt; at 0/1/2.
/// </summary>
public class SentencePieceTests : TorchGuarded
{
    static readonly string[] Merged = ["▁", "t", "h", "e", "c", "a", "▁t", "he", "▁the", "at", "▁c", "▁cat"];

    static byte[] Piece(string piece, float score, int type)
    {
        using var ms = new MemoryStream();
        var o = new CodedOutputStream(ms);
        o.WriteTag(1, WireFormat.WireType.LengthDelimited); o.WriteString(piece);
        o.WriteTag(2, WireFormat.WireType.Fixed32); o.WriteFloat(score);
        o.WriteTag(3, WireFormat.WireType.Varint); o.WriteInt32(type);
        o.Flush();
        return ms.ToArray();
    }

    internal static void WriteModel(string path)
    {
        using var ms = new MemoryStream();
        var o = new CodedOutputStream(ms);
        void Msg(int field, byte[] bytes) { o.WriteTag(field, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(bytes)); }
        Msg(1, Piece("<unk>", 0, 2));
        Msg(1, Piece("<s>", 0, 3));
        Msg(1, Piece("</s>", 0, 3));
        for (int b = 0; b < 256; b++) Msg(1, Piece($"<0x{b:X2}>", 0, 6));
        for (int i = 0; i < Merged.Length; i++) Msg(1, Piece(Merged[i], -i, 1));   // earlier = higher score = merged first

        using var trainer = new MemoryStream();
        var t = new CodedOutputStream(trainer);
        t.WriteTag(3, WireFormat.WireType.Varint); t.WriteInt32(2);            // model_type = BPE
        t.WriteTag(4, WireFormat.WireType.Varint); t.WriteInt32(3 + 256 + Merged.Length);
        t.WriteTag(35, WireFormat.WireType.Varint); t.WriteBool(true);         // byte_fallback
        t.WriteTag(40, WireFormat.WireType.Varint); t.WriteInt32(0);           // unk_id
        t.WriteTag(41, WireFormat.WireType.Varint); t.WriteInt32(1);           // bos_id
        t.WriteTag(42, WireFormat.WireType.Varint); t.WriteInt32(2);           // eos_id
        t.WriteTag(43, WireFormat.WireType.Varint); t.WriteInt32(-1);          // pad_id
        t.Flush();
        Msg(2, trainer.ToArray());

        using var norm = new MemoryStream();
        var n = new CodedOutputStream(norm);
        n.WriteTag(1, WireFormat.WireType.LengthDelimited); n.WriteString("identity");
        n.WriteTag(3, WireFormat.WireType.Varint); n.WriteBool(true);          // add_dummy_prefix
        n.WriteTag(4, WireFormat.WireType.Varint); n.WriteBool(false);         // remove_extra_whitespaces
        n.WriteTag(5, WireFormat.WireType.Varint); n.WriteBool(true);          // escape_whitespaces
        n.Flush();
        Msg(3, norm.ToArray());
        o.Flush();
        File.WriteAllBytes(path, ms.ToArray());
    }

    [Fact]
    public void EncodesWithBosOnceDummyPrefixAndByteFallback()
    {
        string dir = TestCheckpoints.TempDir("spm");
        WriteModel(Path.Combine(dir, "tokenizer.model"));
        var tok = TextTokenizer.Load(dir);
        Assert.Equal("sentencepiece", tok.Kind);
        var ids = tok.Encode("the cat\n\nthe cat");
        int Id(string piece) => 3 + 256 + Array.IndexOf(Merged, piece);
        // BOS once; "▁the" and "▁cat" merged; each "\n" falls back to the byte piece <0x0A> (id 3 + 10).
        Assert.Equal([1, Id("▁the"), Id("▁cat"), 3 + 10, 3 + 10, Id("t"), Id("he"), Id("▁cat")], ids);
        Assert.Equal("the cat\n\nthe cat", tok.Decode(ids.Skip(1)));
    }
}

/// <summary>
/// Golden ids from sentencepiece 0.1.97 (Debian's python3-sentencepiece; golden/make_spm_golden.py) on three
/// models trained for the purpose: BPE with LLaMA's options (byte fallback, identity, whitespace kept, digits
/// split), BPE with sentencepiece's defaults (nmt_nfkc charsmap, extra whitespace removed, &lt;unk&gt;), and a
/// Unigram model; user-defined symbols in all three. Every id of the C4 sample and of wiki.test.raw is
/// compared, and the adversarial strings' ids and sentencepiece's decoding of them.
/// </summary>
public class SentencePieceGoldenTests : TorchGuarded
{
    static readonly Dictionary<string, Tokenization.SentencePieceEncoder> Models = new();

    static Tokenization.SentencePieceEncoder Model(string name)
    {
        lock (Models)
        {
            if (!Models.TryGetValue(name, out var m)) Models[name] = m = Tokenization.SentencePieceEncoder.Load(Golden.File("spm", name + ".model"));
            return m;
        }
    }

    [Theory]
    [InlineData("llama_bpe", "c4")]
    [InlineData("llama_bpe", "wikitest")]
    [InlineData("default_bpe", "c4")]
    [InlineData("default_bpe", "wikitest")]
    [InlineData("unigram", "c4")]
    [InlineData("unigram", "wikitest")]
    public void EveryIdOfTheCorporaEqualsSentencepiece(string model, string corpus)
    {
        string text = Golden.Corpus(corpus);
        var sp = Model(model);
        var ids = sp.Encode(text);
        Golden.SameIds(Golden.Ids(Golden.File("spm", $"{model}.{corpus}.ids.gz")), ids, $"{model} on {corpus}");
        // With LLaMA's options (no normalization, byte fallback) decoding gives the text back, as in sentencepiece.
        if (model == "llama_bpe") Assert.True(sp.Decode(ids) == text, "llama_bpe decoding does not give the text back");
    }

    [Theory]
    [InlineData("llama_bpe")]
    [InlineData("default_bpe")]
    [InlineData("unigram")]
    public void AdversarialStringsEncodeAndDecodeAsSentencepiece(string model)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Golden.File("spm", "adversarial.json")));
        var sp = Model(model);
        var failures = new List<string>();
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string input = Golden.FromUtf16(c.GetProperty("utf16"));
            int[] expected = [.. c.GetProperty("ids").GetProperty(model).EnumerateArray().Select(e => e.GetInt32())];
            int[] got = sp.Encode(input);
            string shown = JsonSerializer.Serialize(input);
            if (!expected.SequenceEqual(got)) failures.Add($"{shown}: [{string.Join(",", got)}], sentencepiece [{string.Join(",", expected)}]");
            string decoded = c.GetProperty("decoded").GetProperty(model).GetString()!;
            string back = sp.Decode(expected);
            if (back != decoded) failures.Add($"decode {shown}: {JsonSerializer.Serialize(back)}, sentencepiece {JsonSerializer.Serialize(decoded)}");
            n++;
        }
        Assert.True(n > 150, $"only {n} cases");
        Assert.True(failures.Count == 0, $"{failures.Count} differences:\n" + string.Join("\n", failures.Take(40)));
    }
}

public class SentencePieceBadInputTests : TorchGuarded
{
    static string Write(byte[] bytes)
    {
        string dir = TestCheckpoints.TempDir("spmbad");
        File.WriteAllBytes(Path.Combine(dir, "tokenizer.model"), bytes);
        return dir;
    }

    [Fact]
    public void NotAModelIsOneLineNamingTheFile()
    {
        foreach (var bytes in new byte[][] { [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "{\"model\": 1}"u8.ToArray(), [] })
        {
            string dir = Write(bytes);
            var e = Assert.Throws<PrunerZeroException>(() => TextTokenizer.Load(dir));
            Assert.StartsWith(Path.Combine(dir, "tokenizer.model") + ": ", e.Message);
            Assert.Contains("SentencePiece model", e.Message);
            Assert.DoesNotContain("\n", e.Message);
        }
    }

    [Fact]
    public void WordModelsAreRefusedByName()
    {
        // The golden llama_bpe model with its trainer_spec's model_type changed to WORD (3) by appending the field.
        var m = File.ReadAllBytes(Golden.File("spm", "llama_bpe.model"));
        using var ms = new MemoryStream();
        ms.Write(m);
        var o = new CodedOutputStream(ms);
        o.WriteTag(2, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(0x18, 0x03));   // field 3 (model_type), varint 3; merged into trainer_spec
        o.Flush();
        var e = Assert.Throws<PrunerZeroException>(() => TextTokenizer.Load(Write(ms.ToArray())));
        Assert.Contains("model type WORD is not supported", e.Message);
    }

    [Fact]
    public void LoadedThroughTextTokenizerWithBosOnce()
    {
        string dir = TestCheckpoints.TempDir("spmgold");
        File.Copy(Golden.File("spm", "llama_bpe.model"), Path.Combine(dir, "tokenizer.model"));
        var tok = TextTokenizer.Load(dir);
        var sp = Tokenization.SentencePieceEncoder.Load(Golden.File("spm", "llama_bpe.model"));
        Assert.Equal(1, tok.BosId);
        Assert.Equal([1, .. sp.Encode("shooo —")], tok.Encode("shooo —"));
        Assert.Equal([1, .. sp.Encode("—")], tok.Encode("—"));
        Assert.True(sp.Encode("—").Length >= 2);   // "▁" and the character (or its bytes), not nothing
    }
}
