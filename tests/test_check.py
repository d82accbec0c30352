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
