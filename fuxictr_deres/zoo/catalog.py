"""The models exported to FuxiCTR's zoo, with what each zoo README says about its paper."""

from dataclasses import dataclass, field
from typing import Dict, List


@dataclass(frozen=True)
class ZooModel:
    name: str                       # folder and class name
    classes: List[str]              # classes src/__init__.py exports (the first is the folder's model)
    reference: str                  # the paper line of the README
    arxiv: str
    bibtex: str
    summary: str                    # one paragraph
    equations: str                  # markdown with $$ blocks
    #: overrides of the package's ``<name>_demo`` expid for the one-epoch ``<name>_test`` expid
    test_overrides: Dict[str, object] = field(default_factory=dict)
    #: expids of benchmark_configs whose results go into the README (DeRes: its ablations too)
    result_expids: List[str] = field(default_factory=list)


def _bib(key: str, author: str, title: str, arxiv: str, year: str, venue: str = "") -> str:
    where = f"  booktitle = {{{venue}}},\n" if venue else ""
    return (f"@article{{{key},\n  author = {{{author}}},\n  title = {{{title}}},\n{where}"
            f"  journal = {{arXiv preprint arXiv:{arxiv}}},\n  year = {{{year}}}\n}}")


_TOKEN_PIPELINE = (
    "All token models here share one pipeline: field embeddings $e \\in \\mathbb{R}^{F \\times E}$, a tokenizer to "
    "$X_0 \\in \\mathbb{R}^{T \\times d}$, $L$ layers of *units* $f_u$ (each with its own pre-norm and no residual "
    "add inside) wired over depth by a **residual rule** (`residual:`), a final RMSNorm, a readout and an MLP head:\n\n"
    "$$h_u = \\mathrm{rule.input}(state, u), \\quad o_u = f_u(h_u), \\quad state = \\mathrm{rule.update}(state, u, o_u), "
    "\\quad \\hat{y} = \\sigma(\\mathrm{MLP}(\\mathrm{readout}(\\mathrm{RMSNorm}(X_L))))$$\n")

MODELS: Dict[str, ZooModel] = {m.name: m for m in [
    ZooModel(
        name="DeRes", classes=["DeRes"],
        reference="Cheng, Nie, Guo, Sun, Lou, Zheng. DeRes: Decoupling Residual Stability and Adaptivity for "
                  "Scalable CTR Prediction. arXiv 2606.07980, 2026.",
        arxiv="2606.07980",
        bibtex=_bib("cheng2026deres", "Cheng and Nie and Guo and Sun and Lou and Zheng",
                    "DeRes: Decoupling Residual Stability and Adaptivity for Scalable CTR Prediction",
                    "2606.07980", "2026"),
        summary="In Pre-Norm Transformer CTR models early interest signals are diluted layer by layer, the identity "
                "skip cannot forget stale ones, and each layer sees only its predecessor. DeRes gives every unit two "
                "parallel paths: an identity residual path (feature reuse, gradient flow) and a block attention "
                "residual path over the summaries of all earlier blocks (high-order recall), scored with SiLU "
                "(Pointwise AttnRes, so stale blocks can get negative weights), mixed per hidden dimension by a "
                "vector-wise gate. It runs on the OneTrans backbone; every other residual rule of this package is an "
                "option (`residual:`), and the paper's ablations are `residual_params` switches.",
        equations=_TOKEN_PIPELINE + (
            "\nThe DeRes rule keeps the identity stream $y = X_0 + \\sum_{v<u} o_v$ and block summaries "
            "$S = [b_0 = X_0, b_1, \\dots, b_{n-1}, p]$ (sums of unit outputs per block, $p$ the open block):\n\n"
            "$$z_j = \\tau \\langle w_u, \\mathrm{RMSNorm}_u(s_j) \\rangle + \\beta_u, \\quad "
            "\\alpha_j = \\mathrm{SiLU}(z_j), \\quad a = \\sum_j \\alpha_j s_j$$\n\n"
            "$$g = \\sigma(\\theta_u) \\in (0,1)^d, \\quad h_u = g \\odot y + (1 - g) \\odot a, \\quad "
            "y \\leftarrow y + f_u(h_u)$$\n\n"
            "With $w = 0, \\beta = 0$ at initialisation $a = 0$ and DeRes computes exactly the Pre-Norm model; "
            "`path_mode: identity` ($g = 1$) is the Pre-Norm model (OneTrans) and `path_mode: attn` ($g = 0$) is "
            "Block AttnRes.\n"),
        result_expids=["DeRes", "DeRes_IdentityOnly", "DeRes_AttnOnly", "DeRes_Learnable", "DeRes_Softmax",
                       "DeRes_TokenMixerLarge", "DeRes_UniMixer"]),
    ZooModel(
        name="OneTrans", classes=["OneTrans"],
        reference="Zhang et al. OneTrans: Unified Feature Interaction and Sequence Modeling with One Transformer "
                  "in Industrial Recommender. WWW 2026, arXiv 2510.26104.",
        arxiv="2510.26104",
        bibtex=_bib("zhang2026onetrans", "Zhang and others",
                    "OneTrans: Unified Feature Interaction and Sequence Modeling with One Transformer in Industrial "
                    "Recommender", "2510.26104", "2026", "WWW"),
        summary="OneTrans unifies feature interaction and sequence modelling in one Transformer with token-specific "
                "parameters for the non-sequential tokens. Without behaviour sequences (Criteo, Avazu, Frappe) it "
                "keeps its non-sequential tokens: AutoSplit tokens through Pre-Norm blocks whose attention and FFN "
                "weights are specific to each token. It is DeRes' reference point: the same backbone with the "
                "Pre-Norm rule.",
        equations=_TOKEN_PIPELINE + (
            "\n$$Z = \\mathrm{MixedMHA}(\\mathrm{RMSNorm}(X)) + X, \\quad "
            "X' = \\mathrm{MixedFFN}(\\mathrm{RMSNorm}(Z)) + Z, \\quad "
            "\\mathrm{MixedFFN}(x_t) = W_{2,t}\\, \\mathrm{act}(W_{1,t} x_t)$$\n\n"
            "`pyramid_tokens` keeps only the last $T_l$ queries in layer $l$ (OneTrans' pyramid).\n"),
        result_expids=["OneTrans"]),
    ZooModel(
        name="RankMixer", classes=["RankMixer"],
        reference="Zhu et al. RankMixer: Scaling Up Ranking Models in Industrial Recommenders. CIKM 2025, "
                  "arXiv 2507.15551.",
        arxiv="2507.15551",
        bibtex=_bib("zhu2025rankmixer", "Zhu and others",
                    "RankMixer: Scaling Up Ranking Models in Industrial Recommenders", "2507.15551", "2025", "CIKM"),
        summary="RankMixer replaces self-attention by parameter-free token mixing and gives every token its own FFN, "
                "in Post-LayerNorm blocks over Chunk tokens, so the model scales with hardware-friendly dense "
                "compute.",
        equations=_TOKEN_PIPELINE + (
            "\n$$S = \\mathrm{LN}(\\mathrm{TokenMixing}(X) + X), \\quad X' = \\mathrm{LN}(\\mathrm{PFFN}(S) + S), "
            "\\quad \\mathrm{PFFN}(s_t) = W_{2,t}\\, \\mathrm{GELU}(W_{1,t} s_t + b_{1,t}) + b_{2,t}$$\n\n"
            "TokenMixing splits each token into $H = T$ heads of width $d/H$; mixed token $h$ gathers head $h$ of "
            "every token. Chunk tokens need $(F \\cdot E) \\bmod T = 0$ and mixing needs $d \\bmod T = 0$.\n"),
        result_expids=["RankMixer"]),
    ZooModel(
        name="TokenMixerLarge", classes=["TokenMixerLarge"],
        reference="Jiang et al. TokenMixer-Large. arXiv 2602.06563, 2026.",
        arxiv="2602.06563",
        bibtex=_bib("jiang2026tokenmixerlarge", "Jiang and others", "TokenMixer-Large", "2602.06563", "2026"),
        summary="TokenMixer-Large builds tokens from semantic field groups plus a global token, mixes them with an "
                "exactly invertible Mix/Revert, applies per-token SwiGLUs in the Pre-Norm form with the residual to "
                "the original input, and adds inter-residuals and auxiliary losses from lower layers.",
        equations=_TOKEN_PIPELINE + (
            "\n$$H_m = \\mathrm{Mix}(X), \\quad H_m' = H_m + \\mathrm{pSwiGLU}_1(\\mathrm{RMSNorm}(H_m)), \\quad "
            "X' = X + \\mathrm{pSwiGLU}_2(\\mathrm{RMSNorm}(\\mathrm{Revert}(H_m')))$$\n\n"
            "$$\\mathrm{pSwiGLU}(x_t) = W_{down,t}(\\mathrm{SiLU}(W_{gate,t} x_t) \\odot W_{up,t} x_t), \\quad "
            "X^{(l+s)} \\mathrel{+}= X^{(l)} \\text{ every } s \\text{ blocks}$$\n\n"
            "The block-level add is the swappable residual rule (`residual: deres` puts DeRes on this backbone).\n"),
        result_expids=["TokenMixerLarge", "DeRes_TokenMixerLarge"]),
    ZooModel(
        name="UniMixer", classes=["UniMixer", "UniMixerLite"],
        reference="Ha et al. UniMixer. arXiv 2604.00590, 2026.",
        arxiv="2604.00590",
        bibtex=_bib("ha2026unimixer", "Ha and others", "UniMixer", "2604.00590", "2026"),
        summary="UniMixer learns the token mixing as a structured soft permutation: local block mixing and global "
                "block mixing, both constrained to doubly stochastic matrices by Sinkhorn with an annealed "
                "temperature, followed by a per-token SwiGLU FFN and wired by SiameseNorm. UniMixer-Lite "
                "(`UniMixerLite`, in the same folder) builds the matrices from a few shared bases and a low-rank "
                "global matrix.",
        equations=_TOKEN_PIPELINE + (
            "\nFlatten $X$ to length $T d$ and split it into $n$ blocks of width $b$:\n\n"
            "$$h_i = x_i W_B^i, \\quad \\mathrm{out} = \\mathrm{reshape}(W_G [h_1; \\dots; h_n]), \\quad "
            "W = \\mathrm{Sinkhorn}(\\exp((M + M^\\top) / 2\\tau))$$\n\n"
            "with $\\tau$ annealed linearly from `tau_start` to `tau_end` over `tau_anneal_epochs`.\n"),
        result_expids=["UniMixer", "UniMixerLite", "DeRes_UniMixer"]),
    ZooModel(
        name="HiFormer", classes=["HiFormer"],
        reference="Gui et al. Hiformer: Heterogeneous Feature Interactions Learning with Transformers for "
                  "Recommender Systems. arXiv 2311.05884, 2023.",
        arxiv="2311.05884",
        bibtex=_bib("gui2023hiformer", "Gui and others",
                    "Hiformer: Heterogeneous Feature Interactions Learning with Transformers for Recommender Systems",
                    "2311.05884", "2023"),
        summary="HiFormer adapts self-attention to heterogeneous feature tokens: every token has its own query, key, "
                "value and output projections, and Hiformer's composite projection computes keys and values from all "
                "tokens through a low-rank matrix; a task token's query alone is computed in the last layer.",
        equations=_TOKEN_PIPELINE + (
            "\n$$q_i = W^Q_i x_i, \\; k_j = W^K_j x_j, \\; v_j = W^V_j x_j, \\quad "
            "o_i = W^O_i \\sum_j \\mathrm{softmax}_j(q_i^\\top k_j / \\sqrt{d_h})\\, v_j$$\n\n"
            "$$[K; V] = \\mathrm{concat}(x_1, \\dots, x_T)\\, U V \\quad (\\text{`composite: kv`, rank } r = "
            "\\texttt{composite\\_rank}; \\text{`qk` composes } Q, K \\text{ instead})$$\n"),
        result_expids=["HiFormer"]),
    ZooModel(
        name="WuKong", classes=["WuKong"],
        reference="Zhang et al. Wukong: Towards a Scaling Law for Large-Scale Recommendation. ICML 2024, "
                  "arXiv 2403.02545.",
        arxiv="2403.02545",
        bibtex=_bib("zhang2024wukong", "Zhang and others",
                    "Wukong: Towards a Scaling Law for Large-Scale Recommendation", "2403.02545", "2024", "ICML"),
        summary="WuKong stacks factorization machine blocks (an optimised FM followed by an MLP) and linear "
                "compression blocks over the embedding tokens, with residuals and layer norms, so that the order of "
                "the captured interactions grows with depth.",
        equations=(
            "\n$$X_{i+1} = \\mathrm{LN}(\\mathrm{concat}(\\mathrm{FMB}(X_i), \\mathrm{LCB}(X_i)) + X_i), \\quad "
            "\\mathrm{FMB}(X) = \\mathrm{reshape}(\\mathrm{MLP}(\\mathrm{LN}(\\mathrm{flatten}(X X^\\top Y)))), "
            "\\quad \\mathrm{LCB}(X) = W_L X$$\n\n"
            "with $Y \\in \\mathbb{R}^{n \\times k}$ (`fm_rank` $k$), a linear projection of $X_i$ where widths "
            "differ, and $\\hat{y} = \\sigma(\\mathrm{MLP}(\\mathrm{flatten}(X_L)))$.\n"),
        result_expids=["WuKong"]),
]}
