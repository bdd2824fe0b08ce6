namespace PrunerZero.Runtime.Pruning;

public enum CalibSampling { Random, Stride }

/// <summary>The calibration windows: nsamples token windows of seqlen.</summary>
public sealed record CalibrationSet(string Source, CalibSampling Sampling, int Seed, int Seqlen, long[][] Windows)
{
    public int NSamples => Windows.Length;

    public string Describe() => $"calib={Path.GetFileName(Source)} nsamples={NSamples} seqlen={Seqlen} sampling={Sampling.ToString().ToLowerInvariant()}{(Sampling == CalibSampling.Random ? $" seed={Seed}" : "")}";

    /// <summary>
    /// Random (the reference's get_c4, seeded): pick a random document whose tokens (BOS first) outnumber
    /// seqlen, then a random start in it. Stride: documents joined with "\n\n" (a plain text file as it is),
    /// tokenized once with BOS once at the start, N tokens; window j starts at j·floor((N − seqlen)/nsamples).
    /// </summary>
    public static CalibrationSet Build(string path, TextTokenizer tokenizer, int nsamples, int seqlen, CalibSampling sampling, int seed)
    {
        if (nsamples <= 0) throw new PrunerZeroException($"{UserError.P("nsamples")} must be positive, got {nsamples}");
        var docs = TextData.CalibrationDocuments(path);
        var windows = new long[nsamples][];
        if (sampling == CalibSampling.Stride)
        {
            var tokens = tokenizer.Encode(string.Join("\n\n", docs));
            if (tokens.Length < seqlen)
                throw new PrunerZeroException($"{path}: calibration text has {tokens.Length} tokens, fewer than seqlen {seqlen}");
            long step = (tokens.Length - seqlen) / nsamples;
            for (int j = 0; j < nsamples; j++)
                windows[j] = tokens.AsSpan((int)(j * step), seqlen).ToArray().Select(t => (long)t).ToArray();
        }
        else
        {
            var rng = new Random(seed);
            var encoded = new Dictionary<int, int[]>();
            int[] Enc(int i) => encoded.TryGetValue(i, out var e) ? e : encoded[i] = tokenizer.Encode(docs[i]);
            if (!Enumerable.Range(0, docs.Count).Any(i => Enc(i).Length > seqlen))
                throw new PrunerZeroException($"{path}: no calibration document is longer than seqlen {seqlen} tokens; use {UserError.P("calib_sampling")} stride");
            for (int j = 0; j < nsamples; j++)
            {
                int[] doc;
                do doc = Enc(rng.Next(docs.Count)); while (doc.Length <= seqlen);
                int start = rng.Next(doc.Length - seqlen);
                windows[j] = doc.AsSpan(start, seqlen).ToArray().Select(t => (long)t).ToArray();
            }
        }
        return new CalibrationSet(path, sampling, seed, seqlen, windows);
    }
}
