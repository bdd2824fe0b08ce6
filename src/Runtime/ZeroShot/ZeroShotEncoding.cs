namespace PrunerZero.Runtime.ZeroShot;

/// <summary>
/// Tokenization of loglikelihood requests as lm-evaluation-harness v0.4.x (`HFLM._encode_pair`) does it:
/// trailing whitespace of the context moves to the front of the continuation; context_enc = tok(context),
/// continuation_enc = tok(context + continuation)[len(context_enc):], so the continuation's tokens are the ones
/// the whole string really has at the boundary. The model input is context_enc + continuation_enc, cut from the
/// left to max_length + 1 tokens, last token dropped.
///
/// BOS: the harness's HF causal-LM wrapper encodes with add_special_tokens = add_bos_token, default False
/// (v0.4.x; v0.3's hf-causal-experimental, which Wanda and Pruner-Zero ran, passes add_special_tokens=False), so
/// by default no BOS is added. <c>bos: true</c> mirrors add_bos_token=True: BOS in front of both encodings.
/// </summary>
public static class ZeroShotEncoding
{
    /// <summary>The harness's (context_enc, continuation_enc) pair.</summary>
    public static (int[] Context, int[] Continuation) EncodePair(TextTokenizer tok, string context, string continuation, bool bos = false)
    {
        int[] prefix = bos ? [tok.BosId ?? throw new PrunerZeroException("BOS requested but the tokenizer has no BOS token")] : [];
        if (context.Length == 0)
        {
            // The harness scores an empty context after its prefix token (BOS, else EOS); none of the shipped tasks has one.
            int first = tok.BosId ?? throw new PrunerZeroException("an empty context needs a BOS token to condition on");
            return ([first], tok.EncodeNoSpecial(continuation));
        }
        int keep = context.TrimEnd().Length;
        if (keep < context.Length)
        {
            continuation = context[keep..] + continuation;
            context = context[..keep];
        }
        int[] whole = [.. prefix, .. tok.EncodeNoSpecial(context + continuation)];
        int[] ctx = [.. prefix, .. tok.EncodeNoSpecial(context)];
        return (ctx, whole.Length > ctx.Length ? whole[ctx.Length..] : []);
    }

    /// <summary>
    /// The token window the model sees for one request and how many of its last predictions are scored:
    /// (context + continuation)[-(maxLength + 1):]; the input is window[..^1], the targets window[1..], and
    /// the continuation is the last <c>continuation.Length</c> targets. Truncated is true when tokens were cut.
    /// </summary>
    public static (int[] Window, bool Truncated) Window(int[] context, int[] continuation, int maxLength)
    {
        if (continuation.Length == 0) throw new PrunerZeroException("a continuation encodes to no tokens");
        if (continuation.Length > maxLength)
            throw new PrunerZeroException($"a continuation of {continuation.Length} tokens exceeds the model's max length {maxLength}");
        int total = context.Length + continuation.Length;
        int cut = Math.Max(0, total - (maxLength + 1));
        var window = new int[total - cut];
        for (int i = cut; i < total; i++) window[i - cut] = i < context.Length ? context[i] : continuation[i - context.Length];
        return (window, cut > 0);
    }
}
