"""The report's words: figure captions built from the plots' own look (``_plotstyle``), and the glossary.

A caption names seen and unseen with :func:`._plotstyle.split_key`, the function the legends' handles come
from, so a caption cannot call a line dashed that the legend draws solid.
"""
from __future__ import annotations

import base64
import html

from ._plotstyle import PAIR_MARKER, PCA_LINESTYLE, SEEN, VALIDATION, WORDS, split_key

__all__ = ["GLOSSARY", "caption", "figure_html", "glossary_html", "html_table", "page"]

_PCA = f"PCA with the same bottleneck: {WORDS[PCA_LINESTYLE]}"
_PAIR = f"{WORDS[PAIR_MARKER]}, one colour per bottleneck k"

CAPTIONS = {
    "capacity": f"Reconstruction error against model size. {split_key()}; colour: bottleneck k; bands: ±1 sd over "
                f"seeds; {_PCA} (its unseen error).",
    "capacity_clean": f"The same against the clean signal ({split_key()}; {_PCA}): a model that denoises beats its "
                      "own input here.",
    "gap": f"Generalization gap, unseen minus seen error ({_PAIR}; {_PCA}). Above zero the model does better on "
           "what it saw.",
    "gap_heatmap": "Mean generalization gap (unseen minus seen error) over seeds for each bottleneck and hidden width.",
    "memorization": f"Share of the injected training noise each model reproduces. {split_key()}; PCA with the same "
                    f"k: black-edged points ({split_key(line=False)}). Dash-dotted: what the rank-k PCA projection "
                    "keeps of the noise (k/d for isotropic noise); 1 = the identity map.",
    "membership": f"How well the reconstruction error tells training samples from unseen ones ({_PAIR}; PCA: "
                  "diamonds); 0.5 (dashed) = not at all.",
    "learning_curves": f"Loss per epoch. {split_key((SEEN, VALIDATION), marker=False)}; one colour per run.",
    "error_distributions": "Per-sample error distributions of the run with the largest gap, and of PCA with the same "
                           f"k. {split_key(marker=False, color=True)}; thick vertical lines: each split's mean.",
    "reconstructions": "Unseen samples, their noisy inputs, and each model's reconstruction.",
    "memorization_scores": "Per-sample memorization scores (error when left out minus error when trained on), one "
                           "distribution per run.",
    "memorization_curves": f"Noise memorization over training, per width. {split_key((SEEN, VALIDATION), marker=False)}"
                           "; the star marks the epoch of lowest clean validation error, what early stopping on the "
                           "clean signal would keep.",
    "landscape": "Reconstruction loss along a filter-normalized random direction in weight space around the "
                 f"trained weights (Li et al. 2018). {split_key(marker=False, color=True)}. One panel for the "
                 "selected and one for the widest model.",
    "attractors": "Spectral radius of the reconstruction map's Jacobian at seen (train) and unseen (test) samples. "
                  "An attractor (green) is a sample the map contracts towards with a margin: radius at most "
                  "1 − margin (green dash-dotted line) and the iterates from a pushed sample still closing in after "
                  "the first step. Radius 1 (black dashed) is neutral: every point of PCA's subspace is a fixed point "
                  "there, and none is an attractor.",
    "double_descent": "Error against the clean signal over hidden width on 100 training samples trained to near zero "
                      f"error. {split_key(color=True)}; black dashed: the interpolation threshold (parameters = n x "
                      f"d); {_PCA}. A peak near the threshold is double descent.",
    "memorized_samples": "The most (top row) and least (bottom row) memorized samples of the widest autoencoder, each "
                         "with its score (error when out minus error when in).",
    "remedies": "Each remedy's unseen error against the clean signal (lower is better) against its leakage, the "
                "true-positive rate of the loss-threshold attack at 1% false positives (left is better), with 95% "
                "intervals over seeds; squares: the architecture without a remedy; black plus: PCA with the same "
                "bottleneck, the level of leakage a model that learned no sample on its own shows.",
    "code_similarity": "How alike the codes of unseen samples are, against model size; colour: bottleneck k. Solid, "
                       "circles: to PCA's scores with the same k; dashed, squares: to the codes of the other seeds of "
                       "the same architecture (are the codes stable?); lines: means over seeds, bands: ±1 sd. Left: "
                       "linear CKA (1 = the same code up to a rotation and a scale); right: mean squared canonical "
                       "correlation (1 = the same code up to any invertible linear map, what a linear probe sees). "
                       "Grey: up to the level of unrelated codes (the exact mean over shuffled samples).",
    "code_membership": "Membership AUC of the code itself (solid, circles: a smaller distance to the nearest "
                       "training code votes member, the sample itself left out) beside the reconstruction error's "
                       "(dashed, triangles), against model size; colour: bottleneck k; lines: means over seeds; "
                       "vertical bars: each run's 95% interval of the code's AUC (DeLong, logit scale); diamonds: "
                       "PCA's scores; 0.5 (black dashed) = no leakage. Below 0.5 leaks too, the other way: the "
                       "seen codes sit apart from each other while unseen samples land near them.",
    "code_dimension": "Intrinsic dimension (TwoNN) of each model's codes of unseen samples against its bottleneck; "
                      "colour: hidden width (means over seeds, bands: ±1 sd); grey diamonds: PCA's scores; dotted: "
                      "the bottleneck itself; dash-dotted: the data's own intrinsic dimension{signal}. A bottleneck "
                      "below the data's dimension must drop structure; codes that use fewer dimensions than k leave "
                      "some unused.",
    "decoded_paths": "Straight lines in each model's code between the codes of pairs of unseen samples, decoded "
                     "(rows: the selected and the widest autoencoder and PCA with the selected k; outer columns: "
                     "the two clean samples). PCA's line is the straight line between the two projections; a "
                     "network whose lines pass through plausible samples has organized its code, one whose middle "
                     "steps blur or jump has not.",
    "audit": "Membership audit on log-log axes: true-positive rate of each attack against its false-positive rate "
             "(dashed diagonal: chance). LiRA and RMIA calibrate each sample with reference models trained with and "
             "without it; the loss threshold does not.",
}


_SIGNALS = {"clean": ", measured on the clean signal (the unseen samples before the injected noise: noise of "
                    "full dimension would raise it)",
            "inputs": ", measured on the inputs as given (the study knows no clean signal: any noise in them raises "
                      "it)"}


def caption(name, *, method=None, scores=None, run=None, signal=None):
    """The caption of figure ``name`` (``latent_<run>`` and ``audit_<run>`` share theirs).

    ``method`` (``"pca"`` or ``"umap"``) and ``scores`` (one entry of ``latent.json``: trustworthiness,
    knn_accuracy) complete the latent map's caption; ``run`` names what it shows; ``signal`` (``latent.csv``'s
    data_signal: ``"clean"`` or ``"inputs"``) says what the data's intrinsic dimension was measured on.
    """
    if name == "code_dimension":
        return CAPTIONS[name].format(signal=_SIGNALS.get(signal, ""))
    if name.startswith("latent"):
        how = {"pca": "PCA (the codes' first two principal components)", "umap": "UMAP"}.get(method, "a 2-D map")
        text = (f"{how} of the latent codes{f' of {run}' if run else ''}; colour: label; "
                f"{split_key(line=False)}.")
        if scores:
            facts = []
            if scores.get("trustworthiness") is not None:
                facts.append(f"trustworthiness {scores['trustworthiness']:.3f} (1 = the codes keep the inputs' "
                             "nearest neighbours)")
            if scores.get("knn_accuracy") is not None:
                facts.append(f"kNN accuracy {scores['knn_accuracy']:.1%} (labels of unseen samples from their 5 "
                             "nearest seen codes)")
            text += (" Of the codes themselves, on unseen samples: " + "; ".join(facts) + ".") if facts else ""
        return text
    return CAPTIONS.get("audit" if name.startswith("audit") else name, "")


GLOSSARY = [
    ("seen / unseen", "Seen samples are the training split the model was fitted on; unseen samples are the "
     "held-out test split (validation, where a figure says so, is a second held-out split used for choosing)."),
    ("run id", "One trained model: ae-k16-h256-s0 is the autoencoder with bottleneck k=16, hidden width 256, seed 0; "
     "pca-k16 is PCA with 16 components."),
    ("PCA baseline", "PCA with the same number of components k, fitted on the same training inputs: the best linear "
     "k-dimensional code. An autoencoder that does not beat it on unseen data has not earned its extra parameters."),
    ("simplest adequate model", "The fewest parameters whose validation error against the clean signal (else SURE, "
     "else the error of denoising fresh noise) is within one standard error over seeds of the best; the error against "
     "the noisy input would reward copying the noise."),
    ("gap", "Unseen minus seen reconstruction error: near zero when the model learned the structure, positive when "
     "it reconstructs what it saw better."),
    ("noise memorization", "Share of the noise injected into each input that comes back in its reconstruction: 0 "
     "for a perfect denoiser, 1 for the identity map. Seen well above unseen means the network stored its "
     "training samples' noise. Negative: the output moves against the noise (the model fits the data badly)."),
    ("PCA keeps", "What the rank-k PCA projection reproduces of the noise (k/d when every feature gets the same "
     "noise): the level a model that learned only a k-dimensional structure would show."),
    ("remedy", "A change to how an architecture is trained that may stop it memorizing: weight decay, dropout, "
     "denoising training (fresh input noise each epoch), early stopping at the clean validation error's minimum, "
     "or DP-SGD (clipped per-sample gradients plus Gaussian noise, with a privacy guarantee epsilon from the "
     "accountant; the audit's epsilon is a lower bound measured on the trained model)."),
    ("membership AUC", "Chance that a random training sample has a lower error than a random unseen one: 0.5 means "
     "the error leaks nothing about who was in the training set, 1 that it gives them all away."),
    ("TPR at 1% FPR", "Share of training samples an attack flags while flagging only 1% of unseen ones: the "
     "confident end of an attack, where leakage matters."),
    ("loss threshold", "The simplest membership attack: call a sample a member when its reconstruction error is low."),
    ("reference models", "Models of the same configuration, each trained on a random half of the training pool, "
     "so every sample has models that saw it and models that did not."),
    ("LiRA", "Likelihood-ratio attack (Carlini et al. 2022): compares a sample's error with its errors under "
     "reference models trained with and without it."),
    ("RMIA", "Relative membership inference (Zarifzadeh et al. 2024): how much more likely a sample is under the "
     "target than under the reference models, relative to other samples."),
    ("memorization score", "Per sample: its error when left out of training minus its error when trained on, "
     "from the reference models."),
    ("split-half agreement", "Per-sample memorization scores from two disjoint halves of the reference models, "
     "compared by Spearman rank correlation: near 1, the ranking is real; near 0, mostly noise."),
    ("Spearman", "Rank correlation: 1 when two lists order the samples alike, 0 when their orders are unrelated."),
    ("95% interval", "Where the true mean lies with 95% confidence given the seeds; the table names the method."),
]


def glossary_html():
    """The glossary as an HTML definition list."""
    esc = html.escape
    return '<dl class="glossary">' + "".join(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>" for term, text in GLOSSARY) \
        + "</dl>"


def html_table(heads, rows, highlight=()):
    """An HTML table of strings, the rows in ``highlight`` marked as selected."""
    esc = html.escape
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in heads) + "</tr>"]
    for i, row in enumerate(rows):
        cls = ' class="selected"' if i in highlight else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{overflow-x:auto}ul.verdict li{margin:0.4em 0}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}tr.selected{background:#fff3c4;
font-weight:bold}figure{margin:1.5em 0}figure img{max-width:100%}figcaption{color:#555;font-size:0.9em}
pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;font-size:0.85em}.sentence{font-size:1.2em;background:#eef6ee;
padding:0.6em 0.9em;border-left:4px solid #4a4}dl.glossary{display:grid;grid-template-columns:max-content auto;
gap:0.25em 1em;font-size:0.9em}dl.glossary dt{font-weight:bold}dl.glossary dd{margin:0}"""


def figure_html(name, path, text):
    """One inlined PNG with its caption, anchored as ``fig-<name>``."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    esc = html.escape
    return (f'<figure id="fig-{esc(name)}"><img src="data:image/png;base64,{data}" alt="{esc(name)}">'
            f"<figcaption><b>{esc(name)}</b>: {esc(text)}</figcaption></figure>")


def page(title, parts):
    """The whole self-contained HTML page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(p for p in parts if p) + "\n</body></html>\n")
