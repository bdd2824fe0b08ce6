using System.Text;

namespace PrunerZero.Runtime;

/// <summary>An evaluation corpus tokenized once, as the perplexity protocol wants it.</summary>
public static class Corpus
{
    /// <summary>Token ids of the joined wikitext rows (BOS once at the start) and the text's UTF-8 byte count.</summary>
    public static (int[] Tokens, long Bytes) Tokenize(string path, TextTokenizer tokenizer, IProgress<string>? progress = null)
    {
        var text = TextData.JoinRows(TextData.WikiTextRows(path));
        progress?.Report($"tokenizing {Path.GetFileName(path)} ({text.Length} characters)");
        var tokens = tokenizer.Encode(text);
        return (tokens, Encoding.UTF8.GetByteCount(text));
    }
}
