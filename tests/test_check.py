import pytest

TEMPLATE_MODEL = open(__file__.rsplit("/", 2)[0] + "/submissions/_template/classifier.py").read()


def test_template_passes(make_submission, harness_cli):
    code, out, _ = harness_cli("check", make_submission("submissions/_template", "ok"))
    assert code == 0, out
    assert "ready to grade" in out


@pytest.mark.parametrize("replace, expected", [
    (("self.l2 = L.Linear(256, 10)", "self.l2 = L.Linear(256, 9)"), "logits have shape (8, 9), expected (8, 10)"),
    (("import chainer\n", "import chainer\nimport not_a_module\n"), "`import not_a_module`: no module named 'not_a_module'"),
    (("class Classifier(", "class Classifer("), "no 'Classifier' defined (found: Classifer"),
    (("return self.l2(F.relu(self.l1(x)))", "import numpy as np\n        return self.l2(np.maximum(self.l1(x).array, 0))"),
     "forward() calls np.maximum()"),
    (("return self.l2(F.relu(self.l1(x)))", "return self.l2(F.relu(self.l1(x))).array"),
     "forward returned ndarray, expected a chainer.Variable"),
    (("return self.l2(F.relu(self.l1(x)))", "x.to_gpu()\n        return self.l2(F.relu(self.l1(x)))"),
     "forward() calls to_gpu()"),
    (("super().__init__()", "super().__init__()\n        1 / 0"), "building it with no arguments raised ZeroDivisionError"),
    (("return self.l2(F.relu(self.l1(x)))", "return self.l2(F.relu(self.l1(x))) * float('nan')"), "NaN or infinite"),
])
def test_deliberate_mistakes_are_named(make_submission, harness_cli, replace, expected):
    sub = make_submission("submissions/_template", "mistake", files={"classifier.py": TEMPLATE_MODEL.replace(*replace)})
    code, out, _ = harness_cli("check", sub)
    assert code == 1
    assert expected in " ".join(out.split()), out


def test_manifest_mistake_is_named(make_submission, harness_cli):
    sub = make_submission("submissions/_template", "typo")
    text = (sub / "submission.yaml").read_text().replace("batch_size: 100", "batch_size: lots")
    (sub / "submission.yaml").write_text(text)
    code, out, _ = harness_cli("check", sub)
    assert code == 1 and "classify.batch_size: expected a positive integer, found 'lots'" in out


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_clamp_is_a_warning_and_exits_0(make_submission, harness_cli):
    sub = make_submission("submissions/_template", "greedy")
    (sub / "submission.yaml").write_text((sub / "submission.yaml").read_text().replace("epochs: 10", "epochs: 500"))
    code, out, _ = harness_cli("check", sub)
    assert code == 0, out
    assert "ready to grade" in out and "warning:" in out and "classify.epochs: 500 is above the competition's budget" in one_line(out)


def test_every_missing_import_at_once_and_a_syntax_error_once(make_submission, harness_cli):
    imports = TEMPLATE_MODEL.replace("import chainer\n", "import chainer\nimport not_a_module\nfrom also_missing import x\n"
                                     "import matplotlib.pyplot as plt\n")
    code, out, _ = harness_cli("check", make_submission("submissions/_template", "imports", files={"classifier.py": imports}))
    text = one_line(out)
    assert code == 1
    assert "`import not_a_module`: no module named 'not_a_module'" in text
    assert "`from also_missing import x`: no module named 'also_missing'" in text
    assert "`import matplotlib.pyplot as plt`: matplotlib is not installed on the grader" in text  # a warning

    broken = TEMPLATE_MODEL.replace("def forward(self, x):", "def forward(self x):")
    code, out, _ = harness_cli("check", make_submission("submissions/_template", "syntax", files={"classifier.py": broken}))
    assert code == 1
    assert out.count("syntax error") == 1 and "frozen" not in out, out
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "def forward(self x)" in t)
    assert f"classifier.py, line {line}: syntax error: " in out and "`def forward(self x):`" in one_line(out)


NUMPY_FORMS = '''import chainer
import chainer.functions as F
import chainer.links as L
import numpy
import numpy as N
from numpy import random as npr
from numpy.random import randn


def noisy(h):
    return h + randn(*h.shape).astype("f")


class Classifier(chainer.Chain):
    def __init__(self):
        super().__init__()
        with self.init_scope():
            self.l1 = L.Linear(784, 10)

    def forward(self, x):
        h = self.l1(x)
        h = h * N.float32(1.0) + numpy.random.uniform(size=h.shape).astype(N.float32)
        return noisy(h) + self.shift(h)

    def shift(self, h):
        return npr.normal(size=h.shape).astype("f")


class Unused(chainer.Chain):
    def forward(self, x):
        return numpy.exp(x)
'''


def test_numpy_is_flagged_in_every_alias_form_wherever_the_harness_calls(make_submission, harness_cli):
    sub = make_submission("submissions/_template", "aliases", files={"classifier.py": NUMPY_FORMS})
    code, out, _ = harness_cli("check", sub)
    text = one_line(out)
    assert code == 1
    assert "forward() calls numpy.random.uniform(): this breaks on the GPU" in text
    assert "noisy() (called from forward()) calls randn()" in text
    assert "shift() (called from forward()) calls npr.normal()" in text
    assert "N.float32" not in text and "numpy.exp" not in text  # a dtype; a class the harness never calls


def test_a_784_shape_error_says_what_the_inputs_are(make_submission, harness_cli):
    flat = TEMPLATE_MODEL.replace("return self.l2(F.relu(self.l1(x)))",
                                  "return self.l2(F.relu(self.l1(x * self.xp.ones(784, dtype='f'))))")
    code, out, _ = harness_cli("check", make_submission("submissions/_template", "flat", files={"classifier.py": flat}))
    assert code == 1 and "inputs are (N,1,28,28) float32 in [0, 1]" in one_line(out), out


def test_printed_lines_reach_the_log_bounded(make_submission, harness_cli, db, tmp_path):
    import json
    from pathlib import Path

    chatty = TEMPLATE_MODEL.replace("return self.l2(F.relu(self.l1(x)))",
                                    "print('batch of', len(x))\n        return self.l2(F.relu(self.l1(x)))")
    sub = make_submission("submissions/_template", "chatty", files={"classifier.py": chatty})
    (sub / "submission.yaml").write_text((sub / "submission.yaml").read_text().replace("epochs: 10", "epochs: 1"))
    code, _, _ = harness_cli("grade", sub, "--quick", "--track", "classify", "--db", db, "--json", tmp_path / "r.json",
                             "--config", Path(__file__).parent / "course_code" / "competition.yaml")
    track = json.loads((tmp_path / "r.json").read_text())["submissions"][0]["tracks"]["classify"]
    assert code == 0 and track["status"] == "OK", track["message"]
    log = Path(track["artifacts"]["log"]).read_text().splitlines()
    printed = [line for line in log if line.startswith("[Classifier] print: batch of")]
    assert printed and len(printed) <= 50
    assert any(line.endswith("more printed lines not kept)") for line in log)
    assert any(line.startswith("[Classifier] epoch 1/1: loss=") for line in log)
