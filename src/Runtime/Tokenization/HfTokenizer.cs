using System.Text.Json.Nodes;
using Tokenizers.DotNet;

namespace PrunerZero.Runtime.Tokenization;

/// <summary>
/// A tokenizer.json encoded by Hugging Face's `tokenizers` (the Rust library, through Tokenizers.DotNet's
/// native libhf_tokenizers): normalizer, pre-tokenizer, model (BPE with ignore_merges / byte_fallback,
/// Unigram, WordPiece, ...) and added tokens exactly as transformers' fast tokenizers run them.
/// The file is loaded without its post_processor, truncation and padding, so an encoding holds the text's
/// tokens only; <see cref="TextTokenizer"/> adds BOS/EOS as transformers decides them.
/// </summary>
internal sealed class HfTokenizer
{
    readonly Tokenizer _tok;

    HfTokenizer(Tokenizer tok) => _tok = tok;

    public static HfTokenizer Load(JsonObject root, string path)
    {
        var copy = root.DeepClone().AsObject();
        copy["post_processor"] = null;
        copy["truncation"] = null;
        copy["padding"] = null;
        // The library reads files only; the copy lives for the duration of the call.
        string tmp = Path.Combine(Path.GetTempPath(), $"pz-tokenizer-{Environment.ProcessId}-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(tmp, copy.ToJsonString());
            return new HfTokenizer(new Tokenizer(tmp));
        }
        catch (TokenizerException e)
        {
            throw new PrunerZeroException($"{path}: not a valid tokenizer.json ({e.Message.Trim()})");
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>
    /// Token ids of one string. A lone UTF-16 surrogate, which the library refuses ("Invalid UTF-16 text"),
    /// is replaced by U+FFFD first, as Encoding.UTF8 does on the SentencePiece path.
    /// </summary>
    public int[] Encode(string text)
    {
        var ids = _tok.Encode(ReplaceLoneSurrogates(text));
        var result = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++) result[i] = checked((int)ids[i]);
        return result;
    }

    public string Decode(IEnumerable<int> ids) => _tok.Decode([.. ids.Select(i => checked((uint)i))]);

    internal static string ReplaceLoneSurrogates(string s)
    {
        int i = 0;
        for (; i < s.Length; i++)
        {
            if (!char.IsSurrogate(s[i])) continue;
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            break;
        }
        if (i >= s.Length) return s;
        var chars = s.ToCharArray();
        for (; i < chars.Length; i++)
        {
            if (!char.IsSurrogate(chars[i])) continue;
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1])) { i++; continue; }
            chars[i] = '\uFFFD';
        }
        return new string(chars);
    }
}
