"""A course-style classifier that wraps its network in L.Classifier, the way Chainer's tutorials train."""
import chainer
import chainer.functions as F
import chainer.links as L


class MLP(chainer.Chain):

    def __init__(self, n_units=100, n_out=10):
        super(MLP, self).__init__()
        with self.init_scope():
            self.l1 = L.Linear(None, n_units)
            self.l2 = L.Linear(None, n_out)

    def __call__(self, x):
        return self.l2(F.relu(self.l1(x)))


class Model(L.Classifier):

    def __init__(self):
        super(Model, self).__init__(MLP())
