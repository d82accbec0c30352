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


def test_constructor_arguments_and_notebooks(make_submission):
    sub = make_submission("submissions/_template", "erin", manifest=(
        "name: A\nclassify:\n  model: course.ipynb:Model1\n  model_args: {n_units: 1000, n_out: 10, act: relu}\n"
        "generate:\n  generator: gan.py:Generator\n  generator_args: {n_hidden: 100, sizes: [64, 32]}\n"
        "  discriminator: gan.py:Discriminator\n  discriminator_args:\n"))
    (sub / "course.ipynb").write_text("{}")
    (sub / "gan.py").write_text("")
    m = manifest.load(sub)
    assert str(m.tracks["classify"].classes["model"]) == "course.ipynb:Model1"
    assert m.tracks["classify"].class_args == {"model": {"n_units": 1000, "n_out": 10, "act": "relu"}}
    assert m.tracks["generate"].class_args == {"generator": {"n_hidden": 100, "sizes": [64, 32]}, "discriminator": {}}


@pytest.mark.parametrize("extra, expected", [
    ("  modle_args: {n: 1}\n", "classify.modle_args: unknown key (known keys for classify: model, model_args,"),
    ("  model_args: [1000, 10]\n", "classify.model_args: expected a mapping of constructor arguments like "
                                   "{n_units: 1000, n_out: 10}, found [1000, 10]"),
    ("  model_args: {when: 2020-01-01}\n", "classify.model_args: when: expected numbers, text, booleans or lists"),
    ("  generator_args: {n: 1}\n", "classify.generator_args: unknown key"),
])
def test_constructor_argument_mistakes_are_named(make_submission, extra, expected):
    sub = make_submission("submissions/_template", "fred",
                          manifest="name: A\nclassify:\n  model: classifier.py:Classifier\n" + extra)
    with pytest.raises(manifest.ManifestError) as info:
        manifest.load(sub)
    assert expected in str(info.value)
