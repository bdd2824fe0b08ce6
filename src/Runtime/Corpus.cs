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

    /// <summary>
    /// Every id must index the embedding: a tokenizer larger than the model's vocab_size is refused here, with
    /// the first offending id, before any forward pass (where libtorch would fail with an index error).
    /// </summary>
    public static void CheckTokenIds(IEnumerable<int> ids, int vocabSize, string source)
    {
        int at = 0;
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)vocabSize)
                throw new PrunerZeroException($"{source}: token {at} has id {id}, outside the model's vocabulary (vocab_size {vocabSize}); the tokenizer does not match the checkpoint");
            at++;
        }
    }
}
