import pytest

from harness import manifest


def test_template_is_valid(make_submission):
    m = manifest.load(make_submission("submissions/_template", "alice"))
    assert m.name == "Your Name"
    spec = m.tracks["classify"]
    assert str(spec.classes["model"]) == "classifier.py:Classifier"
    assert (spec.epochs, spec.batch_size, spec.optimizer) == (10, 100, "Adam")


@pytest.mark.parametrize("yaml_text, expected", [
    ("name: A\nclasify:\n  model: classifier.py:Classifier\n", "clasify: unknown key"),
    ("name: A\nclassify:\n  model: classifier.py:Classifier\n  epochs: ten\n", "classify.epochs: expected a positive integer, found 'ten'"),
    ("name: A\nclassify:\n  model: classifier.py:Classifier\n  epoch: 3\n", "classify.epoch: unknown key"),
    ("name: A\nclassify:\n  model: classifier.py\n", "classify.model: expected 'file.py:Name'"),
    ("name: A\nclassify:\n  model: missing.py:Classifier\n", "file 'missing.py' not found"),
    ("name: A\nclassify:\n  model: ../classifier.py:Classifier\n", "must be a path inside the submission folder"),
    ("name: A\nclassify:\n  model: classifier.py:Classifier\n  optimizer: Adamm\n", "classify.optimizer: expected a class in chainer.optimizers"),
    ("name: A\nclassify:\n  model: classifier.py:Classifier\n  weights: w.npz\n", "classify.weights: file 'w.npz' not found"),
    ("name: A\nclassify:\n  model: classifier.py:Classifier\n  optimizer_args: {alpha: fast}\n", "optimizer_args: expected numbers"),
    ("name: A\nclassify: [1, 2]\n", "classify: expected a mapping"),
    ("name: A\n", "no track given"),
    ("classify:\n  model: classifier.py:Classifier\n", "name: expected the author's name"),
])
def test_problems_name_file_key_expected_and_found(make_submission, yaml_text, expected):
    sub = make_submission("submissions/_template", "bob", manifest=yaml_text)
    with pytest.raises(manifest.ManifestError) as info:
        manifest.load(sub)
    assert expected in str(info.value)
    assert all(str(sub / "submission.yaml") in p for p in info.value.problems)


def test_yaml_syntax_error_gives_the_line(make_submission):
    sub = make_submission("submissions/_template", "carol", manifest="name: A\nclassify:\n  model: [unclosed\n")
    with pytest.raises(manifest.ManifestError, match=r"not valid YAML at line \d+"):
        manifest.load(sub)


def test_all_problems_reported_at_once(make_submission):
    sub = make_submission("submissions/_template", "dave",
                          manifest="name: A\nclassify:\n  model: classifier.py:Classifier\n  epochs: 0\n  batch_size: -1\n  foo: 1\n")
    with pytest.raises(manifest.ManifestError) as info:
        manifest.load(sub)
    assert len(info.value.problems) == 3


def test_missing_manifest(tmp_path):
    with pytest.raises(manifest.ManifestError, match="submission.yaml: missing"):
        manifest.load(tmp_path)
